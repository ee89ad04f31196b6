#include "store/internal/checks.h"

#include <optional>

namespace kiln::store::internal {

namespace {

std::string Quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

// Whether `s` is well-formed UTF-8 (no overlong forms, surrogates or code points past U+10FFFF).
bool IsUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
    unsigned char c = byte(i);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    uint32_t cp = n == 1 ? c : c & (0x7f >> n);
    for (size_t k = 1; k < n; ++k) {
      if ((byte(i + k) & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (byte(i + k) & 0x3f);
    }
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += n;
  }
  return true;
}

// Why `labels` cannot be stored, or nullopt when they can.
std::optional<std::string> LabelsProblem(const std::map<std::string, std::string>& labels) {
  for (const auto& [key, value] : labels) {
    if (key.empty()) return "a label key is empty";
    for (const auto& [what, text] : {std::pair{"key", &key}, std::pair{"value", &value}}) {
      if (text->find('\0') != std::string::npos) {
        return "the " + std::string(what) + " of label " + Quote(key) + " holds a NUL byte";
      }
      if (!IsUtf8(*text)) {
        return "the " + std::string(what) + " of label " + Quote(key) + " is not UTF-8";
      }
    }
  }
  return std::nullopt;
}

}  // namespace

bool IsStorableText(std::string_view text) {
  return text.find('\0') == std::string_view::npos && IsUtf8(text);
}

Result<void> CheckBatch(const Batch& batch) {
  if (batch.workflow_upsert) {
    const WorkflowRecord& w = *batch.workflow_upsert;
    if (w.uid.empty()) return MakeError(Code::kInvalidArgument, "workflow has an empty uid");
    if (auto problem = LabelsProblem(w.labels)) {
      return MakeError(Code::kInvalidArgument,
                       "cannot record workflow " + Quote(w.uid) + ": " + *problem);
    }
  }
  for (const NodeKey& key : batch.node_deletes) {
    if (key.workflow_uid.empty() || key.id.empty()) {
      return MakeError(Code::kInvalidArgument, "node " + Quote(key.id) + " of workflow " +
                                                   Quote(key.workflow_uid) +
                                                   ": workflow uid and node id must not be empty");
    }
  }
  for (const NodeRecord& node : batch.node_upserts) {
    if (node.workflow_uid.empty() || node.id.empty()) {
      return MakeError(Code::kInvalidArgument, "node " + Quote(node.id) + " of workflow " +
                                                   Quote(node.workflow_uid) +
                                                   ": workflow uid and node id must not be empty");
    }
  }
  return {};
}

Result<void> CheckTemplateScope(std::string_view kind, std::string_view namespace_,
                                bool any_namespace) {
  if (kind == kWorkflowTemplate) {
    if (namespace_.empty() && !any_namespace) {
      return MakeError(Code::kInvalidArgument, "a WorkflowTemplate needs a namespace");
    }
    return {};
  }
  if (kind == kClusterWorkflowTemplate) {
    if (!namespace_.empty()) {
      return MakeError(Code::kInvalidArgument,
                       "a ClusterWorkflowTemplate has no namespace, but namespace " +
                           Quote(namespace_) + " was given");
    }
    return {};
  }
  return MakeError(Code::kInvalidArgument, "template kind " + Quote(kind) + " is not " +
                                               std::string(kWorkflowTemplate) + " or " +
                                               std::string(kClusterWorkflowTemplate));
}

Result<void> CheckTemplate(const TemplateRecord& t) {
  if (auto scope = CheckTemplateScope(t.kind, t.namespace_, /*any_namespace=*/false); !scope) {
    return scope;
  }
  if (t.name.empty()) {
    return MakeError(Code::kInvalidArgument, "cannot record a " + t.kind + " with an empty name");
  }
  if (auto problem = LabelsProblem(t.labels)) {
    return MakeError(
        Code::kInvalidArgument,
        "cannot record " + TemplateName(t.kind, t.namespace_, t.name) + ": " + *problem);
  }
  return {};
}

std::string TemplateName(std::string_view kind, std::string_view namespace_,
                         std::string_view name) {
  std::string path =
      namespace_.empty() ? std::string(name) : std::string(namespace_) + "/" + std::string(name);
  return std::string(kind) + " " + Quote(path);
}

}  // namespace kiln::store::internal
