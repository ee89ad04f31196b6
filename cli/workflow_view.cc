#include "cli/workflow_view.h"

#include <yaml.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <map>
#include <set>
#include <string_view>

#include "cli/data_dir.h"

namespace kiln::cli {

namespace {

// printf into a string.
[[gnu::format(printf, 2, 3)]] void Appendf(std::string& out, const char* format, ...) {
  char small[512];
  va_list args;
  va_start(args, format);
  int n = std::vsnprintf(small, sizeof small, format, args);
  va_end(args);
  if (n < 0) return;
  if (static_cast<size_t>(n) < sizeof small) {
    out.append(small, static_cast<size_t>(n));
    return;
  }
  std::string big(static_cast<size_t>(n) + 1, '\0');
  va_start(args, format);
  std::vsnprintf(big.data(), big.size(), format, args);
  va_end(args);
  big.pop_back();
  out += big;
}

// A JSON document stored as text ("" when none); null when empty or unreadable.
nlohmann::json ParseStored(const std::string& text) {
  if (text.empty()) return nullptr;
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  return j.is_discarded() ? nlohmann::json(nullptr) : j;
}

std::string ValueText(const nlohmann::json& v) {
  return v.is_string() ? v.get<std::string>() : v.dump();
}

// Display width of UTF-8 text (the tree's box-drawing characters are one column each).
size_t Width(const std::string& s) {
  size_t w = 0;
  for (unsigned char c : s) w += (c & 0xC0) != 0x80;
  return w;
}

std::string Pad(const std::string& s, size_t width) {
  size_t w = Width(s);
  return w >= width ? s : s + std::string(width - w, ' ');
}

}  // namespace

std::vector<TreeRow> Tree(const std::vector<store::NodeRecord>& nodes) {
  std::map<std::string, const store::NodeRecord*> by_id;
  for (const store::NodeRecord& n : nodes) by_id[n.id] = &n;
  std::map<std::string, std::vector<const store::NodeRecord*>> children;
  std::vector<const store::NodeRecord*> roots;
  for (const store::NodeRecord& n : nodes) {
    if (n.parent_id.empty() || !by_id.count(n.parent_id)) {
      roots.push_back(&n);
    } else {
      children[n.parent_id].push_back(&n);
    }
  }
  auto order = [](const store::NodeRecord* a, const store::NodeRecord* b) {
    // Started nodes in start order, then the ones that never started.
    bool a_started = a->started_at != 0, b_started = b->started_at != 0;
    if (a_started != b_started) return a_started;
    if (a->started_at != b->started_at) return a->started_at < b->started_at;
    return a->id < b->id;
  };
  std::sort(roots.begin(), roots.end(),
            [&](const store::NodeRecord* a, const store::NodeRecord* b) {
              // The workflow's root (no parent) first, then orphans.
              if (a->parent_id.empty() != b->parent_id.empty()) return a->parent_id.empty();
              return order(a, b);
            });
  for (auto& [id, list] : children) std::sort(list.begin(), list.end(), order);

  // Iterative: the depth comes from the records, so no recursion on it.
  std::vector<TreeRow> rows;
  std::set<std::string> seen;
  struct Item {
    const store::NodeRecord* node;
    std::string indent;  // drawn for the node's descendants
    std::string branch;  // drawn in front of the node itself
  };
  std::vector<Item> stack;
  for (auto it = roots.rbegin(); it != roots.rend(); ++it) stack.push_back({*it, "", ""});
  while (!stack.empty()) {
    Item item = std::move(stack.back());
    stack.pop_back();
    if (!seen.insert(item.node->id).second) continue;
    rows.push_back({item.node, item.branch});
    auto kids = children.find(item.node->id);
    if (kids == children.end()) continue;
    const auto& list = kids->second;
    for (size_t i = list.size(); i-- > 0;) {
      bool last = i + 1 == list.size();
      stack.push_back(
          {list[i], item.indent + (last ? "   " : "│  "), item.indent + (last ? "└─ " : "├─ ")});
    }
  }
  for (const store::NodeRecord& n : nodes) {
    if (!seen.count(n.id)) rows.push_back({&n, ""});
  }
  return rows;
}

std::string RenderWorkflowText(const WorkflowRecords& records, const std::string& logs_line,
                               bool wide) {
  const store::WorkflowRecord& w = records.workflow;
  const std::vector<store::NodeRecord>& nodes = records.nodes;
  const std::vector<store::ParameterRecord>& params = records.parameters;
  const std::vector<store::ArtifactRecord>& artifacts = records.artifacts;
  std::string out;
  auto field = [&out](const char* name, const std::string& value) {
    Appendf(out, "%-12s%s\n", name, value.c_str());
  };
  field("Name:", w.name);
  field("Namespace:", w.namespace_);
  field("Uid:", w.uid);
  field("Phase:", w.phase);
  if (!w.message.empty()) field("Message:", w.message);
  field("Created:", FormatTime(w.created_at));
  field("Started:", FormatTime(w.started_at));
  field("Finished:", FormatTime(w.finished_at));
  field("Duration:", FormatDuration(w.started_at, w.finished_at));
  nlohmann::json parameters = ParseStored(w.parameters_json);
  if (parameters.is_object() && !parameters.empty()) {
    out += "Parameters:\n";
    for (auto it = parameters.begin(); it != parameters.end(); ++it) {
      Appendf(out, "  %s: %s\n", it.key().c_str(), ValueText(it.value()).c_str());
    }
  }
  if (!logs_line.empty()) field("Logs:", logs_line);

  if (!nodes.empty()) {
    std::vector<TreeRow> rows = Tree(nodes);
    std::map<std::string, int> attempts;  // Retry node -> attempts made
    for (const store::NodeRecord& n : nodes) {
      if (!n.parent_id.empty()) ++attempts[n.parent_id];
    }
    size_t step_w = 4, tmpl_w = 8, phase_w = 5, id_w = 2;
    for (const TreeRow& r : rows) {
      step_w = std::max(step_w, Width(r.prefix) + Width(r.node->display_name));
      tmpl_w = std::max(tmpl_w, Width(r.node->template_name));
      phase_w = std::max(phase_w, r.node->phase.size());
      id_w = std::max(id_w, Width(r.node->id));
    }
    Appendf(out, "\n%s  %s  %s  %-8s  %-8s  %s%s\n", Pad("STEP", step_w).c_str(),
            Pad("TEMPLATE", tmpl_w).c_str(), Pad("PHASE", phase_w).c_str(), "DURATION", "ATTEMPTS",
            wide ? (Pad("ID", id_w) + "  ").c_str() : "", "MESSAGE");
    for (const TreeRow& r : rows) {
      const store::NodeRecord& n = *r.node;
      std::string tries = n.type == "Retry" ? std::to_string(attempts[n.id]) : "";
      std::string message = n.message;
      if (n.exit_code && *n.exit_code != 0 && n.type == "Pod" && message.empty()) {
        message = "exit code " + std::to_string(*n.exit_code);
      }
      std::string line = Pad(r.prefix + n.display_name, step_w) + "  " +
                         Pad(n.template_name, tmpl_w) + "  " + Pad(n.phase, phase_w) + "  " +
                         Pad(FormatDuration(n.started_at, n.finished_at), 8) + "  " +
                         Pad(tries, 8) + "  " + (wide ? Pad(n.id, id_w) + "  " : "") + message;
      while (!line.empty() && line.back() == ' ') line.pop_back();
      out += line;
      out += '\n';
    }
  }

  std::map<std::string, std::string> names;  // node id -> display name
  for (const store::NodeRecord& n : nodes) names[n.id] = n.display_name;
  auto node_name = [&](const std::string& id) {
    if (id.empty()) return std::string("(workflow)");
    auto it = names.find(id);
    return it == names.end() || it->second.empty() ? id : it->second;
  };
  bool any_param =
      std::any_of(params.begin(), params.end(), [](const auto& p) { return p.kind == "output"; });
  bool any_artifact = std::any_of(artifacts.begin(), artifacts.end(),
                                  [](const auto& a) { return a.direction == "output"; });
  if (!any_param && !any_artifact) return out;
  out += "\nOutputs:\n";
  if (any_param) {
    out += "  Parameters:\n";
    for (const store::ParameterRecord& p : params) {
      if (p.kind != "output") continue;
      Appendf(out, "    %s.%s: %s\n", node_name(p.node_id).c_str(), p.name.c_str(),
              p.value.c_str());
    }
  }
  if (any_artifact) {
    out += "  Artifacts:\n";
    for (const store::ArtifactRecord& a : artifacts) {
      if (a.direction != "output") continue;
      Appendf(out, "    %s.%s: sha256:%s  %lld bytes  %s\n", node_name(a.node_id).c_str(),
              a.name.c_str(), a.sha256.empty() ? "-" : a.sha256.c_str(),
              static_cast<long long>(a.size), a.uri.c_str());
    }
  }
  return out;
}

namespace {

// Whether a YAML 1.1 reader would take the plain scalar `s` for something other than a string:
// null, a boolean (y/n/yes/no/on/off/true/false in their cases), a number (ints in any base,
// floats, .inf, .nan, sexagesimal 1:20), or a timestamp-looking date.
bool ResolvesToNonString(std::string_view s) {
  if (s.empty()) return true;
  static constexpr std::string_view kWords[] = {
      "~",     "null",  "Null",  "NULL",  "y",     "Y",    "yes",  "Yes",   "YES",   "n",
      "N",     "no",    "No",    "NO",    "true",  "True", "TRUE", "false", "False", "FALSE",
      "on",    "On",    "ON",    "off",   "Off",   "OFF",  ".inf", ".Inf",  ".INF",  "-.inf",
      "-.Inf", "-.INF", "+.inf", "+.Inf", "+.INF", ".nan", ".NaN", ".NAN",  "<<",    "="};
  for (std::string_view w : kWords) {
    if (s == w) return true;
  }
  // Anything that starts like a number is quoted: cheaper and safer than YAML 1.1's regexps
  // (0x1F, 0o17, 1_000, 1:30, 2026-11-24, 1e3 ...).
  char c = s.front();
  if (c >= '0' && c <= '9') return true;
  if ((c == '-' || c == '+' || c == '.') && s.size() > 1 &&
      ((s[1] >= '0' && s[1] <= '9') || s[1] == '.')) {
    return true;
  }
  return false;
}

class YamlWriter {
 public:
  YamlWriter() {
    ok_ = yaml_emitter_initialize(&emitter_) == 1;
    if (!ok_) return;
    yaml_emitter_set_output(&emitter_, &YamlWriter::Write, this);
    yaml_emitter_set_unicode(&emitter_, 1);
    yaml_emitter_set_width(&emitter_, -1);  // never fold long strings
    yaml_emitter_set_indent(&emitter_, 2);
  }
  ~YamlWriter() { yaml_emitter_delete(&emitter_); }
  YamlWriter(const YamlWriter&) = delete;
  YamlWriter& operator=(const YamlWriter&) = delete;

  std::string Document(const nlohmann::json& value) {
    yaml_event_t e;
    yaml_stream_start_event_initialize(&e, YAML_UTF8_ENCODING);
    Emit(e);
    yaml_document_start_event_initialize(&e, nullptr, nullptr, nullptr, 1);
    Emit(e);
    // Iterative, with an explicit stack: a deep document must not exhaust the C++ stack.
    struct Frame {
      const nlohmann::json* value;
      nlohmann::json::const_iterator next;
      bool started = false;
    };
    std::vector<Frame> stack;
    stack.push_back({&value, value.cbegin(), false});
    while (ok_ && !stack.empty()) {
      Frame& f = stack.back();
      const nlohmann::json& v = *f.value;
      if (!v.is_object() && !v.is_array()) {
        Scalar(v);
        stack.pop_back();
        continue;
      }
      if (!f.started) {
        f.started = true;
        f.next = v.cbegin();
        if (v.is_object()) {
          yaml_mapping_start_event_initialize(
              &e, nullptr, nullptr, 1,
              v.empty() ? YAML_FLOW_MAPPING_STYLE : YAML_BLOCK_MAPPING_STYLE);
        } else {
          yaml_sequence_start_event_initialize(
              &e, nullptr, nullptr, 1,
              v.empty() ? YAML_FLOW_SEQUENCE_STYLE : YAML_BLOCK_SEQUENCE_STYLE);
        }
        Emit(e);
      }
      if (f.next == v.cend()) {
        if (v.is_object()) {
          yaml_mapping_end_event_initialize(&e);
        } else {
          yaml_sequence_end_event_initialize(&e);
        }
        Emit(e);
        stack.pop_back();
        continue;
      }
      auto it = f.next++;
      if (v.is_object()) String(it.key());
      stack.push_back({&*it, {}, false});
    }
    yaml_document_end_event_initialize(&e, 1);
    Emit(e);
    yaml_stream_end_event_initialize(&e);
    Emit(e);
    return ok_ ? std::move(out_) : nlohmann::json(value).dump(2) + "\n";
  }

 private:
  static int Write(void* self, unsigned char* buffer, size_t size) {
    static_cast<YamlWriter*>(self)->out_.append(reinterpret_cast<const char*>(buffer), size);
    return 1;
  }

  void Emit(yaml_event_t& event) {
    if (!ok_) {
      yaml_event_delete(&event);
      return;
    }
    ok_ = yaml_emitter_emit(&emitter_, &event) == 1;  // takes the event, on failure too
  }

  void Plain(const std::string& text) {
    yaml_event_t e;
    yaml_scalar_event_initialize(&e, nullptr, nullptr,
                                 reinterpret_cast<const yaml_char_t*>(text.data()),
                                 static_cast<int>(text.size()), 1, 1, YAML_PLAIN_SCALAR_STYLE);
    Emit(e);
  }

  void String(const std::string& text) {
    yaml_event_t e;
    yaml_scalar_style_t style =
        ResolvesToNonString(text) ? YAML_DOUBLE_QUOTED_SCALAR_STYLE : YAML_ANY_SCALAR_STYLE;
    if (text.find('\n') != std::string::npos) style = YAML_LITERAL_SCALAR_STYLE;
    yaml_scalar_event_initialize(&e, nullptr, nullptr,
                                 reinterpret_cast<const yaml_char_t*>(text.data()),
                                 static_cast<int>(text.size()), 1, 1, style);
    Emit(e);
  }

  void Scalar(const nlohmann::json& v) {
    if (v.is_string()) {
      String(v.get<std::string>());
    } else if (v.is_null()) {
      Plain("null");
    } else {
      Plain(v.dump());  // numbers and booleans as JSON writes them
    }
  }

  yaml_emitter_t emitter_;
  bool ok_ = false;
  std::string out_;
};

}  // namespace

std::string ToYaml(const nlohmann::json& value) {
  YamlWriter writer;
  return writer.Document(value);
}

}  // namespace kiln::cli
