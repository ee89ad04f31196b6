#include "scheduler/node_selector.h"

namespace kiln::scheduler {

namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool KnownField(std::string_view f) {
  if (f == "id" || f == "name" || f == "displayName" || f == "templateName" || f == "phase" || f == "type") {
    return true;
  }
  constexpr std::string_view kPrefix = "inputs.parameters.", kSuffix = ".value";
  return f.size() > kPrefix.size() + kSuffix.size() && f.starts_with(kPrefix) && f.ends_with(kSuffix);
}

}  // namespace

Result<NodeSelector> ParseNodeSelector(std::string_view text) {
  NodeSelector selector;
  if (Trim(text).empty()) return selector;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string_view part = Trim(text.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
    start = comma == std::string_view::npos ? text.size() + 1 : comma + 1;
    NodeSelector::Requirement r;
    size_t op = part.find("!=");
    size_t op_len = 2;
    if (op == std::string_view::npos) {
      op = part.find("==");
      if (op == std::string_view::npos) {
        op = part.find('=');
        op_len = 1;
      }
    } else {
      r.equals = false;
    }
    if (part.empty() || op == std::string_view::npos || op == 0) {
      return MakeError(Code::kInvalidArgument, "nodeFieldSelector: \"" + std::string(part) +
                                                   "\" is not FIELD=VALUE, FIELD==VALUE or FIELD!=VALUE");
    }
    r.field = std::string(Trim(part.substr(0, op)));
    r.value = std::string(Trim(part.substr(op + op_len)));
    if (!KnownField(r.field)) {
      return MakeError(Code::kInvalidArgument,
                       "nodeFieldSelector: unknown field \"" + r.field +
                           "\"; one of id, name, displayName, templateName, phase, type, "
                           "inputs.parameters.NAME.value");
    }
    selector.requirements.push_back(std::move(r));
  }
  return selector;
}

bool Matches(const NodeSelector& selector, const NodeState& node) {
  for (const NodeSelector::Requirement& r : selector.requirements) {
    std::string value;
    bool present = true;
    if (r.field == "id" || r.field == "name") {
      value = node.id;
    } else if (r.field == "displayName") {
      value = node.name;
    } else if (r.field == "templateName") {
      value = node.template_name;
    } else if (r.field == "phase") {
      value = std::string(PhaseName(node.phase));
    } else if (r.field == "type") {
      value = std::string(NodeTypeName(node.type));
    } else {
      std::string name = r.field.substr(18, r.field.size() - 18 - 6);
      auto it = node.inputs.find(name);
      present = it != node.inputs.end();
      if (present) value = it->second;
    }
    if ((present && value == r.value) != r.equals) return false;
  }
  return true;
}

}  // namespace kiln::scheduler
