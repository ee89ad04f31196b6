#include "dag/validate.h"

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

#include "base/strings.h"
#include "dag/cron.h"
#include "dag/duration.h"
#include "dag/expr/depends.h"
#include "dag/expr/expr_lang.h"
#include "dag/expr/govaluate.h"
#include "dag/expr/template_string.h"
#include "dag/names.h"
#include "dag/parse.h"
#include "dag/quantity.h"
#include "dag/resource_syntax.h"

namespace kiln::dag {

void TemplateLibrary::Add(const Manifest& manifest) {
  const std::string& name = manifest.metadata.name;
  if (name.empty()) return;
  if (manifest.kind == ManifestKind::kWorkflowTemplate) namespaced_.emplace(name, &manifest);
  if (manifest.kind == ManifestKind::kClusterWorkflowTemplate) cluster_.emplace(name, &manifest);
}

const Manifest* TemplateLibrary::Find(std::string_view name, bool cluster_scope) const {
  const auto& map = cluster_scope ? cluster_ : namespaced_;
  auto it = map.find(name);
  return it == map.end() ? nullptr : it->second;
}

const Template* TemplateLibrary::FindTemplate(std::string_view name, std::string_view template_name,
                                              bool cluster_scope) const {
  const Manifest* m = Find(name, cluster_scope);
  if (m == nullptr) return nullptr;
  return dag::FindTemplate(m->spec, template_name);
}

const Template* FindTemplate(const WorkflowSpec& spec, std::string_view name) {
  for (const Template& t : spec.templates) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

namespace {

std::string Index(const std::string& path, size_t i) { return path + "[" + std::to_string(i) + "]"; }

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t pos = s.find(sep, start);
    if (pos == std::string_view::npos) {
      parts.push_back(s.substr(start));
      return parts;
    }
    parts.push_back(s.substr(start, pos - start));
    start = pos + 1;
  }
}

bool IsTemplated(std::string_view s) { return s.find("{{") != std::string_view::npos; }

bool IsInteger(std::string_view s) {
  if (s.empty()) return false;
  size_t i = (s[0] == '-' || s[0] == '+') ? 1 : 0;
  if (i == s.size()) return false;
  for (; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
  }
  return true;
}

// What a reference check needs to know about the place a string sits in.
struct Scope {
  const Template* tmpl = nullptr;        // whose inputs/outputs are in scope
  bool in_loop = false;                  // {{item}} is defined
  // DAG/steps context: sibling invocations by name, and which may be referenced.
  enum class Kind { kNone, kDag, kSteps } kind = Kind::kNone;
  const std::unordered_map<std::string_view, uint32_t>* siblings = nullptr;
  const std::vector<const Invocation*>* sibling_list = nullptr;
  // For a reference from invocation `self`: may it read sibling `other`'s outputs?
  std::function<bool(uint32_t other)> may_reference;
};

class Validator {
 public:
  Validator(const Manifest& m, const TemplateLibrary& lib, Diagnostics& diags)
      : m_(m), lib_(lib), d_(diags), sp_(m.spec_path) {}

  void Run() {
    CheckMetadata();
    if (m_.kind == ManifestKind::kWorkflowEventBinding) {
      CheckEventBinding();
      return;
    }
    ResolveWorkflowScope();
    CheckWorkflowSpec();
    if (m_.cron) CheckCron();
  }

 private:
  void Err(Location loc, const std::string& path, std::string msg) {
    d_.Error(m_.file, loc, path, std::move(msg));
  }
  void Warn(Location loc, const std::string& path, std::string msg) {
    d_.Warning(m_.file, loc, path, std::move(msg));
  }

  // ---- metadata -------------------------------------------------------------------------
  void CheckMetadata() {
    const Metadata& md = m_.metadata;
    bool needs_name = m_.kind != ManifestKind::kWorkflow;
    if (md.name.empty() && md.generate_name.empty()) {
      Err(md.loc.line ? md.loc : m_.loc, "metadata",
          needs_name ? "missing required field: metadata.name"
                     : "missing required field: metadata.name or metadata.generateName");
    } else if (md.name.empty() && needs_name) {
      Err(md.loc, "metadata.name", std::string("missing required field: a ") +
                                       std::string(KindName(m_.kind)) +
                                       " needs metadata.name (generateName is for Workflows)");
    }
    if (!md.name.empty() && !IsTemplated(md.name)) {
      if (auto e = ValidateDns1123Subdomain(md.name)) Err(md.name_loc, "metadata.name", *e);
    }
    if (!md.generate_name.empty() && !IsTemplated(md.generate_name)) {
      if (auto e = ValidateGenerateName(md.generate_name)) Err(md.loc, "metadata.generateName", *e);
    }
    for (const auto& [k, v] : md.labels) {
      if (auto e = ValidateLabelKey(k)) Err(md.loc, "metadata.labels." + k, *e);
      if (!IsTemplated(v)) {
        if (auto e = ValidateLabelValue(v)) Err(md.loc, "metadata.labels." + k, *e);
      }
    }
  }

  // ---- workflow-level scope ------------------------------------------------------------
  void ResolveWorkflowScope() {
    const WorkflowSpec& s = m_.spec;
    for (const Parameter& p : s.arguments.parameters) wf_params_.insert(p.name);
    if (s.workflow_template_ref) {
      const auto& ref = *s.workflow_template_ref;
      ref_manifest_ = lib_.Find(ref.name, ref.cluster_scope);
      if (ref_manifest_) {
        for (const Parameter& p : ref_manifest_->spec.arguments.parameters) wf_params_.insert(p.name);
      }
    }
    // Global outputs (globalName) anywhere in this spec or the referenced one.
    auto collect = [&](const WorkflowSpec& spec) {
      for (const Template& t : spec.templates) {
        for (const Parameter& p : t.outputs.parameters) {
          if (!p.global_name.empty()) global_params_.insert(p.global_name);
        }
        for (const Artifact& a : t.outputs.artifacts) {
          if (!a.global_name.empty()) global_artifacts_.insert(a.global_name);
        }
      }
      for (const Parameter& p : spec.arguments.parameters) global_params_.insert(p.name);
      for (const Artifact& a : spec.arguments.artifacts) global_artifacts_.insert(a.name);
    };
    collect(s);
    if (ref_manifest_) collect(ref_manifest_->spec);
  }

  const Template* LookupTemplate(std::string_view name) const {
    if (const Template* t = FindTemplate(m_.spec, name)) return t;
    if (ref_manifest_) return FindTemplate(ref_manifest_->spec, name);
    return nullptr;
  }

  std::vector<std::string_view> TemplateNames() const {
    std::vector<std::string_view> names;
    for (const Template& t : m_.spec.templates) names.push_back(t.name);
    if (ref_manifest_) {
      for (const Template& t : ref_manifest_->spec.templates) names.push_back(t.name);
    }
    return names;
  }

  // ---- the spec ----------------------------------------------------------------------------
  void CheckWorkflowSpec() {
    const WorkflowSpec& s = m_.spec;
    const bool is_workflow = m_.kind == ManifestKind::kWorkflow || m_.kind == ManifestKind::kCronWorkflow;
    if (s.workflow_template_ref) {
      const auto& ref = *s.workflow_template_ref;
      if (ref.name.empty()) {
        Err(ref.loc, sp_ + ".workflowTemplateRef.name", "missing required field: the WorkflowTemplate's name");
      } else if (!ref_manifest_) {
        Warn(ref.loc, sp_ + ".workflowTemplateRef",
             std::string(ref.cluster_scope ? "ClusterWorkflowTemplate " : "WorkflowTemplate ") +
                 Quote(ref.name) + " is not among the linted files; it is not checked (lint it together with this file)");
      }
    } else if (s.templates.empty()) {
      Err(s.loc, sp_ + ".templates", "missing required field: at least one template (or a workflowTemplateRef)");
    }

    // Entrypoint.
    std::string entry = s.entrypoint;
    Location entry_loc = s.entrypoint_loc.line ? s.entrypoint_loc : s.loc;
    if (entry.empty() && ref_manifest_) entry = ref_manifest_->spec.entrypoint;
    if (entry.empty()) {
      if (is_workflow && !s.workflow_template_ref) {
        Err(s.loc, sp_ + ".entrypoint", "missing required field: entrypoint (the template to start with)");
      }
    } else if (!IsTemplated(entry) && (!s.workflow_template_ref || ref_manifest_)) {
      const Template* t = LookupTemplate(entry);
      if (t == nullptr) {
        Err(entry_loc, sp_ + ".entrypoint", "unknown template " + Quote(entry) + DidYouMean(entry, TemplateNames()));
      } else if (is_workflow) {
        // The entrypoint's inputs come from spec.arguments.
        for (const Parameter& p : t->inputs.parameters) {
          if (p.value || p.default_value || p.value_from) continue;
          if (wf_params_.count(p.name)) continue;
          Err(entry_loc, sp_ + ".entrypoint",
              "template " + Quote(t->name) + " needs input parameter " + Quote(p.name) +
                  ", which spec.arguments.parameters does not supply");
        }
      }
    }
    if (!s.on_exit.empty() && !IsTemplated(s.on_exit) && LookupTemplate(s.on_exit) == nullptr &&
        (!s.workflow_template_ref || ref_manifest_)) {
      Err(s.on_exit_loc, sp_ + ".onExit", "unknown template " + Quote(s.on_exit) + DidYouMean(s.on_exit, TemplateNames()));
    }
    for (const auto& [name, hook] : s.hooks) CheckHook(hook, sp_ + ".hooks." + name, Scope{});

    // Arguments.
    CheckParameterList(s.arguments.parameters, sp_ + ".arguments.parameters", /*require_value=*/is_workflow);
    CheckArtifactNames(s.arguments.artifacts, sp_ + ".arguments.artifacts");
    for (size_t i = 0; i < s.arguments.parameters.size(); ++i) {
      const Parameter& p = s.arguments.parameters[i];
      if (p.value) CheckRefs(*p.value, p.value_loc, Index(sp_ + ".arguments.parameters", i) + ".value", Scope{});
    }
    CheckIntOrTemplate(s.parallelism, s.loc, sp_ + ".parallelism", /*min=*/0);
    CheckIntOrTemplate(s.active_deadline_seconds, s.loc, sp_ + ".activeDeadlineSeconds", 0);
    if (s.pod_gc.is_object() && s.pod_gc.contains("strategy") && s.pod_gc["strategy"].is_string()) {
      std::string st = s.pod_gc["strategy"].get<std::string>();
      static const std::vector<std::string_view> kStrategies = {
          "", "OnPodCompletion", "OnPodSuccess", "OnWorkflowCompletion", "OnWorkflowSuccess"};
      if (std::find(kStrategies.begin(), kStrategies.end(), st) == kStrategies.end()) {
        Err(s.loc, sp_ + ".podGC.strategy", "unknown podGC strategy " + Quote(st) +
                                                ": use OnPodCompletion, OnPodSuccess, OnWorkflowCompletion or OnWorkflowSuccess" +
                                                DidYouMean(st, kStrategies));
      }
    }
    if (!s.service_account_name.empty() && !IsTemplated(s.service_account_name)) {
      if (auto e = ValidateDns1123Subdomain(s.service_account_name)) Err(s.loc, sp_ + ".serviceAccountName", *e);
    }
    if (s.volume_claim_templates.is_array()) {
      for (size_t i = 0; i < s.volume_claim_templates.size(); ++i) {
        const Json& pvc = s.volume_claim_templates[i];
        std::string path = Index(sp_ + ".volumeClaimTemplates", i);
        const Json* name = pvc.contains("metadata") && pvc["metadata"].is_object() && pvc["metadata"].contains("name")
                               ? &pvc["metadata"]["name"] : nullptr;
        if (name == nullptr || !name->is_string() || name->get<std::string>().empty()) {
          Err(s.loc, path + ".metadata.name", "missing required field: a volume claim template needs metadata.name");
        } else if (auto e = ValidateDns1123Subdomain(name->get<std::string>())) {
          Err(s.loc, path + ".metadata.name", *e);
        }
      }
    }
    if (s.volume_claim_gc.is_object() && s.volume_claim_gc.contains("strategy")) {
      const Json& st = s.volume_claim_gc["strategy"];
      static const std::vector<std::string_view> kStrategies = {"", "OnWorkflowCompletion", "OnWorkflowSuccess"};
      std::string text = st.is_string() ? st.get<std::string>() : st.dump();
      if (std::find(kStrategies.begin(), kStrategies.end(), text) == kStrategies.end()) {
        Err(s.loc, sp_ + ".volumeClaimGC.strategy", "unknown volumeClaimGC strategy " + Quote(text) +
                                                        ": use OnWorkflowSuccess (the default) or OnWorkflowCompletion" +
                                                        DidYouMean(text, kStrategies));
      }
    }
    CheckPodSpecPatch(s.pod_spec_patch, s.loc, sp_ + ".podSpecPatch", Scope{});
    CheckVolumes(s.volumes, s.loc, sp_ + ".volumes");
    CheckSynchronization(s.synchronization, s.loc, sp_ + ".synchronization");
    if (s.retry_strategy) CheckRetryStrategy(*s.retry_strategy, sp_ + ".retryStrategy", Scope{});

    // Templates.
    std::unordered_map<std::string_view, size_t> seen;
    for (size_t i = 0; i < s.templates.size(); ++i) {
      const Template& t = s.templates[i];
      std::string path = Index(sp_ + ".templates", i);
      if (t.name.empty()) {
        Err(t.loc, path + ".name", "missing required field: every template needs a name");
      } else {
        auto [it, inserted] = seen.emplace(t.name, i);
        if (!inserted) {
          Err(t.name_loc, path + ".name", "duplicate template name " + Quote(t.name) + " (also at " +
                                              Index(sp_ + ".templates", it->second) + ")");
        }
        if (!IsTemplated(t.name)) {
          if (auto e = ValidateArgoFieldName(t.name)) Err(t.name_loc, path + ".name", *e);
        }
      }
      CheckTemplate(t, path);
    }
    if (s.template_defaults) CheckTemplateBody(*s.template_defaults, sp_ + ".templateDefaults", /*is_default=*/true);
  }

  void CheckHook(const LifecycleHook& h, const std::string& path, const Scope& scope) {
    CheckTemplateReference(h.template_name, h.template_ref, nullptr, h.loc, path, "hook");
    if (h.name != "exit") {
      if (h.expression.empty()) {
        Err(h.loc, path + ".expression", "missing required field: a hook other than \"exit\" needs an expression saying when it runs");
      } else {
        CheckExprSyntax(h.expression, h.expression_loc, path + ".expression");
      }
    }
    CheckArgumentRefs(h.arguments, path + ".arguments", scope);
  }

  // ---- names and values ------------------------------------------------------------------
  void CheckParameterList(const std::vector<Parameter>& params, const std::string& path, bool require_value) {
    std::unordered_map<std::string_view, size_t> seen;
    for (size_t i = 0; i < params.size(); ++i) {
      const Parameter& p = params[i];
      std::string ppath = Index(path, i);
      if (p.name.empty()) continue;  // the parser reported it
      if (!seen.emplace(p.name, i).second) {
        Err(p.loc, ppath + ".name", "duplicate parameter name " + Quote(p.name));
      }
      if (!IsTemplated(p.name)) {
        if (auto e = ValidateParamOrArtifactName(p.name)) Err(p.loc, ppath + ".name", *e);
      }
      if (require_value && !p.value && !p.value_from) {
        Err(p.loc, ppath + ".value", "parameter " + Quote(p.name) + " needs a value (or valueFrom); pass one with -p " + p.name + "=...");
      }
      if (!p.enum_values.empty()) {
        const std::optional<std::string>& v = p.value ? p.value : p.default_value;
        if (v && !IsTemplated(*v) &&
            std::find(p.enum_values.begin(), p.enum_values.end(), *v) == p.enum_values.end()) {
          std::string allowed;
          for (const std::string& e : p.enum_values) allowed += (allowed.empty() ? "" : ", ") + Quote(e);
          Err(p.value_loc.line ? p.value_loc : p.loc, ppath + (p.value ? ".value" : ".default"),
              "value " + Quote(*v) + " is not one of the enum values " + allowed);
        }
      }
    }
  }

  void CheckArtifactNames(const std::vector<Artifact>& arts, const std::string& path) {
    std::unordered_map<std::string_view, size_t> seen;
    for (size_t i = 0; i < arts.size(); ++i) {
      const Artifact& a = arts[i];
      if (a.name.empty()) continue;
      if (!seen.emplace(a.name, i).second) Err(a.loc, Index(path, i) + ".name", "duplicate artifact name " + Quote(a.name));
      if (!IsTemplated(a.name)) {
        if (auto e = ValidateParamOrArtifactName(a.name)) Err(a.loc, Index(path, i) + ".name", *e);
      }
      if (!a.from.empty() && !a.from_expression.empty()) {
        Err(a.loc, Index(path, i), "give one of from and fromExpression, not both");
      }
      if (!a.from_expression.empty()) CheckExprSyntax(a.from_expression, a.loc, Index(path, i) + ".fromExpression");
    }
  }

  void CheckIntOrTemplate(const std::optional<std::string>& v, Location loc, const std::string& path, int64_t min) {
    if (!v || IsTemplated(*v)) return;
    if (!IsInteger(*v)) {
      Err(loc, path, "expected an integer, got " + Quote(*v));
      return;
    }
    if (std::stoll(*v) < min) Err(loc, path, "must be at least " + std::to_string(min) + ", got " + *v);
  }

  void CheckDuration(const std::optional<std::string>& v, Location loc, const std::string& path) {
    if (!v || IsTemplated(*v)) return;
    auto d = ParseDuration(*v);
    if (!d) Err(loc, path, d.error());
  }

  void CheckVolumes(const Json& volumes, Location loc, const std::string& path) {
    if (!volumes.is_array()) return;
    std::unordered_set<std::string> names;
    for (size_t i = 0; i < volumes.size(); ++i) {
      const Json& v = volumes[i];
      if (!v.is_object()) continue;
      if (!v.contains("name") || !v["name"].is_string()) {
        Err(loc, Index(path, i) + ".name", "missing required field: every volume needs a name");
        continue;
      }
      std::string name = v["name"].get<std::string>();
      if (!names.insert(name).second) Err(loc, Index(path, i) + ".name", "duplicate volume name " + Quote(name));
    }
  }

  void CheckSynchronization(const Json& sync, Location loc, const std::string& path) {
    if (!sync.is_object()) return;
    auto check_mutex = [&](const Json& mx, const std::string& p) {
      if (!mx.is_object()) return;
      if (!mx.contains("name") || !mx["name"].is_string() || mx["name"].get<std::string>().empty()) {
        Err(loc, p + ".name", "missing required field: a mutex needs a name");
      }
    };
    auto check_sem = [&](const Json& sem, const std::string& p) {
      if (!sem.is_object()) return;
      if (sem.contains("database")) return;
      if (!sem.contains("configMapKeyRef")) {
        Err(loc, p + ".configMapKeyRef", "missing required field: a semaphore needs configMapKeyRef (or database)");
        return;
      }
      const Json& ref = sem["configMapKeyRef"];
      if (!ref.is_object() || !ref.contains("name") || !ref.contains("key")) {
        Err(loc, p + ".configMapKeyRef", "a semaphore's configMapKeyRef needs name and key");
      }
    };
    if (sync.contains("mutex")) check_mutex(sync["mutex"], path + ".mutex");
    if (sync.contains("semaphore")) check_sem(sync["semaphore"], path + ".semaphore");
    if (sync.contains("mutexes") && sync["mutexes"].is_array()) {
      for (size_t i = 0; i < sync["mutexes"].size(); ++i) check_mutex(sync["mutexes"][i], Index(path + ".mutexes", i));
    }
    if (sync.contains("semaphores") && sync["semaphores"].is_array()) {
      for (size_t i = 0; i < sync["semaphores"].size(); ++i) check_sem(sync["semaphores"][i], Index(path + ".semaphores", i));
    }
  }

  void CheckRetryStrategy(const RetryStrategy& rs, const std::string& path, const Scope& scope) {
    if (rs.limit && !IsTemplated(*rs.limit)) {
      if (!IsInteger(*rs.limit)) {
        Err(rs.limit_loc, path + ".limit", "expected an integer, got " + Quote(*rs.limit));
      } else if (std::stoll(*rs.limit) < 0) {
        Err(rs.limit_loc, path + ".limit", "must be at least 0, got " + *rs.limit);
      }
    }
    if (rs.limit) CheckRefs(*rs.limit, rs.limit_loc, path + ".limit", scope);
    if (rs.backoff) {
      CheckDuration(rs.backoff->duration, rs.backoff->loc, path + ".backoff.duration");
      CheckDuration(rs.backoff->max_duration, rs.backoff->loc, path + ".backoff.maxDuration");
      CheckDuration(rs.backoff->cap, rs.backoff->loc, path + ".backoff.cap");
      if (rs.backoff->factor && !IsTemplated(*rs.backoff->factor) && !IsInteger(*rs.backoff->factor)) {
        Err(rs.backoff->loc, path + ".backoff.factor", "expected an integer, got " + Quote(*rs.backoff->factor));
      }
    }
    if (!rs.expression.empty()) CheckExprSyntax(rs.expression, rs.expression_loc, path + ".expression", &scope);
  }

  // ---- expressions ------------------------------------------------------------------------
  // An expression field (retryStrategy.expression, hooks, fromExpression, ...): Argo substitutes
  // its {{...}} tags first, then parses it as expr-lang.
  void CheckExprSyntax(std::string_view text, Location loc, const std::string& path, const Scope* scope = nullptr) {
    std::string parsed_text(text);
    if (IsTemplated(text)) {
      if (scope) CheckRefs(text, loc, path, *scope);
      auto replaced = expr::Substitute(text, [](const expr::TemplateTag&) -> std::optional<std::string> {
        return std::string("placeholder");
      });
      if (!replaced) {
        Err(loc, path, "invalid template " + Quote(text) + ": " + replaced.error().message);
        return;
      }
      parsed_text = *replaced;
    }
    auto p = expr::ParseExpr(parsed_text);
    if (!p) {
      Err(loc, path, "invalid expression " + Quote(text) + ": " + p.error().message);
    }
  }

  void CheckWhen(const std::string& when, Location loc, const std::string& path, const Scope& scope) {
    auto tags = expr::FindTags(when);
    if (!tags) {
      Err(loc, path, "invalid template " + Quote(when) + ": " + tags.error().message);
      return;
    }
    CheckRefs(when, loc, path, scope);
    // Placeholders stand for the values substituted at run time.
    auto replaced = expr::Substitute(when, [](const expr::TemplateTag&) -> std::optional<std::string> {
      return std::string("placeholder");
    });
    if (!replaced) return;
    auto parsed = expr::ParseWhen(*replaced);
    if (!parsed) {
      Err(loc, path, "invalid when expression " + Quote(when) + ": " + parsed.error().message);
    }
  }

  // Checks every {{...}} reference in `text` against `scope`.
  void CheckRefs(std::string_view text, Location loc, const std::string& path, const Scope& scope) {
    if (!IsTemplated(text)) return;
    auto tags = expr::FindTags(text);
    if (!tags) {
      Err(loc, path, "invalid template: " + tags.error().message);
      return;
    }
    for (const expr::TemplateTag& tag : *tags) {
      if (tag.is_expression) {
        auto program = expr::ParseExpr(tag.body);
        if (!program) {
          Err(loc, path, "invalid expression " + Quote(tag.body) + ": " + program.error().message);
          continue;
        }
        for (const std::vector<std::string>& ref : expr::ReferencedPaths(*program)) {
          std::string joined;
          for (const std::string& part : ref) joined += (joined.empty() ? "" : ".") + part;
          CheckVariable(joined, loc, path, scope, /*in_expression=*/true);
        }
      } else {
        CheckVariable(tag.body, loc, path, scope, false);
      }
    }
  }

  // The location recorded for a templated string at `path`, else `fallback`.
  // A podSpecPatch is YAML or JSON text, a strategic merge patch for the pod spec: checked as
  // a mapping when it has no {{...}} (a rendered one is checked when the step starts).
  void CheckPodSpecPatch(const std::string& text, Location loc, const std::string& path, const Scope& scope) {
    if (text.empty()) return;
    CheckRefs(text, loc, path, scope);
    if (IsTemplated(text)) return;
    auto patch = YamlToJson(path, text);
    if (!patch) {
      Err(loc, path, "podSpecPatch is not valid YAML or JSON: " + patch.error().message());
    } else if (!patch->is_object()) {
      std::string type = patch->type_name();
      Err(loc, path, "podSpecPatch must be a mapping of pod spec fields (e.g. containers: [{name: main, resources: "
                     "...}]), not " + std::string(type[0] == 'a' || type[0] == 'o' ? "an " : "a ") + type);
    }
  }

  Location LocFor(const std::string& path, Location fallback) const {
    auto it = m_.value_locations.find(path);
    return it == m_.value_locations.end() ? fallback : it->second;
  }

  void CheckJsonRefs(const Json& j, Location loc, const std::string& path, const Scope& scope) {
    if (j.is_string()) {
      CheckRefs(j.get_ref<const std::string&>(), LocFor(path, loc), path, scope);
    } else if (j.is_array()) {
      for (size_t i = 0; i < j.size(); ++i) CheckJsonRefs(j[i], loc, Index(path, i), scope);
    } else if (j.is_object()) {
      for (auto it = j.begin(); it != j.end(); ++it) CheckJsonRefs(it.value(), loc, path + "." + it.key(), scope);
    }
  }

  void CheckVariable(std::string_view var, Location loc, const std::string& path, const Scope& scope,
                     bool in_expression) {
    std::vector<std::string_view> parts = Split(var, '.');
    std::string shown = in_expression ? std::string(var) : "{{" + std::string(var) + "}}";
    if (parts[0] == "inputs" && parts.size() >= 3 && scope.tmpl) {
      if (parts[1] == "parameters") {
        std::vector<std::string_view> names;
        for (const Parameter& p : scope.tmpl->inputs.parameters) names.push_back(p.name);
        if (std::find(names.begin(), names.end(), parts[2]) == names.end()) {
          Err(loc, path, shown + " refers to input parameter " + Quote(parts[2]) + ", which template " +
                             Quote(scope.tmpl->name) + " does not declare" + DidYouMean(parts[2], names));
        }
      } else if (parts[1] == "artifacts") {
        std::vector<std::string_view> names;
        for (const Artifact& a : scope.tmpl->inputs.artifacts) names.push_back(a.name);
        if (std::find(names.begin(), names.end(), parts[2]) == names.end()) {
          Err(loc, path, shown + " refers to input artifact " + Quote(parts[2]) + ", which template " +
                             Quote(scope.tmpl->name) + " does not declare" + DidYouMean(parts[2], names));
        }
      }
      return;
    }
    if (parts[0] == "workflow" && parts.size() >= 3 && parts[1] == "parameters") {
      if (parts[2] == "json") return;  // all workflow parameters as one JSON string
      if (!wf_params_.count(std::string(parts[2])) && !(m_.kind == ManifestKind::kWorkflowTemplate ||
                                                         m_.kind == ManifestKind::kClusterWorkflowTemplate)) {
        std::vector<std::string_view> names(wf_params_.begin(), wf_params_.end());
        Err(loc, path, shown + " refers to workflow parameter " + Quote(parts[2]) +
                           ", which spec.arguments.parameters does not declare" + DidYouMean(parts[2], names));
      }
      return;
    }
    if (parts[0] == "workflow" && parts.size() >= 4 && parts[1] == "outputs") {
      const auto& set = parts[2] == "artifacts" ? global_artifacts_ : global_params_;
      if ((parts[2] == "parameters" || parts[2] == "artifacts") && !set.count(std::string(parts[3]))) {
        Err(loc, path, shown + " refers to global output " + Quote(parts[3]) +
                           ", which no output declares with globalName");
      }
      return;
    }
    if (parts[0] == "item") {
      if (!scope.in_loop) {
        Err(loc, path, shown + " is only defined in a task or step with withItems, withParam or withSequence");
      }
      return;
    }
    if ((parts[0] == "tasks" || parts[0] == "steps") && parts.size() >= 2 && scope.siblings) {
      bool want_dag = parts[0] == "tasks";
      if (want_dag != (scope.kind == Scope::Kind::kDag)) {
        Err(loc, path, shown + " uses " + std::string(parts[0]) + ". in a " +
                           (scope.kind == Scope::Kind::kDag ? "dag template; use tasks." : "steps template; use steps."));
        return;
      }
      if (parts[1] == "name") return;  // {{steps.name}}: the step's own name
      auto it = scope.siblings->find(parts[1]);
      if (it == scope.siblings->end()) {
        std::vector<std::string_view> names;
        for (const auto& [n, idx] : *scope.siblings) names.push_back(n);
        std::sort(names.begin(), names.end());
        Err(loc, path, shown + " refers to unknown " + (want_dag ? "task " : "step ") + Quote(parts[1]) +
                           DidYouMean(parts[1], names));
        return;
      }
      if (scope.may_reference && !scope.may_reference(it->second)) {
        Err(loc, path, shown + " refers to " + (want_dag ? "task " : "step ") + Quote(parts[1]) +
                           (want_dag ? ", which is not a dependency of this task (add it to depends)"
                                     : ", which does not run in an earlier step group"));
        return;
      }
      CheckOutputRef(parts, loc, path, scope, (*scope.sibling_list)[it->second], shown);
      return;
    }
  }

  // {{tasks.X.outputs.parameters.P}} and friends: P must be an output of X's template.
  void CheckOutputRef(const std::vector<std::string_view>& parts, Location loc, const std::string& path,
                      const Scope& scope, const Invocation* target, const std::string& shown) {
    (void)scope;
    if (parts.size() < 3) return;
    static const std::vector<std::string_view> kFields = {
        "outputs", "status", "exitCode", "startedAt", "finishedAt", "id", "ip", "hostNodeName", "name"};
    if (std::find(kFields.begin(), kFields.end(), parts[2]) == kFields.end()) {
      Err(loc, path, shown + ": unknown field " + Quote(parts[2]) + DidYouMean(parts[2], kFields));
      return;
    }
    if (parts[2] != "outputs" || parts.size() < 5) return;
    const Template* t = ResolveInvocation(*target);
    if (t == nullptr) return;
    bool fan_out = !target->with_items.is_null() || !target->with_param.empty() || target->with_sequence;
    (void)fan_out;
    if (parts[3] == "parameters") {
      std::vector<std::string_view> names;
      for (const Parameter& p : t->outputs.parameters) names.push_back(p.name);
      if (std::find(names.begin(), names.end(), parts[4]) == names.end()) {
        Err(loc, path, shown + " refers to output parameter " + Quote(parts[4]) + " of " + Quote(target->name) +
                           ", but template " + Quote(t->name) + " declares no such output" + DidYouMean(parts[4], names));
      }
    } else if (parts[3] == "artifacts") {
      std::vector<std::string_view> names;
      for (const Artifact& a : t->outputs.artifacts) names.push_back(a.name);
      if (std::find(names.begin(), names.end(), parts[4]) == names.end()) {
        Err(loc, path, shown + " refers to output artifact " + Quote(parts[4]) + " of " + Quote(target->name) +
                           ", but template " + Quote(t->name) + " declares no such output" + DidYouMean(parts[4], names));
      }
    }
  }

  const Template* ResolveInvocation(const Invocation& inv) const {
    if (inv.inline_template) return inv.inline_template.get();
    if (inv.template_ref) {
      return lib_.FindTemplate(inv.template_ref->name, inv.template_ref->template_name, inv.template_ref->cluster_scope);
    }
    if (!inv.template_name.empty()) return LookupTemplate(inv.template_name);
    return nullptr;
  }

  // ---- templates ---------------------------------------------------------------------------
  void CheckTemplate(const Template& t, const std::string& path) { CheckTemplateBody(t, path, false); }

  bool DefaultsHaveImage() const {
    const auto& td = m_.spec.template_defaults;
    if (!td) return false;
    const Json& c = td->container.is_object() ? td->container : td->script.container;
    return c.is_object() && c.contains("image");
  }

  void CheckTemplateBody(const Template& t, const std::string& path, bool is_default) {
    if (t.type == TemplateType::kUnknown && !is_default) {
      Err(t.loc, path, "template " + Quote(t.name) +
                           " has no type: give one of container, script, dag, steps, suspend, resource, "
                           "containerSet, http, data or plugin");
    }
    if (!t.extra_types.empty()) {
      std::string types = std::string(TemplateTypeName(t.type));
      for (TemplateType x : t.extra_types) types += " and " + std::string(TemplateTypeName(x));
      Err(t.loc, path, "a template has exactly one type; template " + Quote(t.name) + " has " + types);
    }
    Scope scope;
    scope.tmpl = &t;
    CheckParameterList(t.inputs.parameters, path + ".inputs.parameters", false);
    CheckParameterList(t.outputs.parameters, path + ".outputs.parameters", false);
    CheckArtifactNames(t.inputs.artifacts, path + ".inputs.artifacts");
    CheckArtifactNames(t.outputs.artifacts, path + ".outputs.artifacts");
    const bool leaf = t.type == TemplateType::kContainer || t.type == TemplateType::kScript ||
                      t.type == TemplateType::kContainerSet;
    for (size_t i = 0; i < t.inputs.artifacts.size(); ++i) {
      const Artifact& a = t.inputs.artifacts[i];
      if (leaf && a.path.empty()) {
        Err(a.loc, Index(path + ".inputs.artifacts", i) + ".path",
            "missing required field: input artifact " + Quote(a.name) + " needs a path to be placed at");
      }
      CheckJsonRefs(a.storage, a.loc, Index(path + ".inputs.artifacts", i) + "." + a.storage_kind, scope);
    }
    for (size_t i = 0; i < t.outputs.artifacts.size(); ++i) {
      const Artifact& a = t.outputs.artifacts[i];
      std::string apath = Index(path + ".outputs.artifacts", i);
      if (leaf && a.path.empty()) {
        Err(a.loc, apath + ".path", "missing required field: output artifact " + Quote(a.name) + " needs the path it is collected from");
      }
      if ((t.type == TemplateType::kDag || t.type == TemplateType::kSteps) && a.from.empty() && a.from_expression.empty()) {
        Err(a.loc, apath + ".from", "missing required field: an output artifact of a " +
                                        std::string(TemplateTypeName(t.type)) + " template needs from or fromExpression");
      }
    }
    for (size_t i = 0; i < t.outputs.parameters.size(); ++i) {
      const Parameter& p = t.outputs.parameters[i];
      std::string ppath = Index(path + ".outputs.parameters", i);
      if (!p.value && !p.value_from && !is_default) {
        Err(p.loc, ppath + ".valueFrom", "missing required field: output parameter " + Quote(p.name) +
                                             " needs valueFrom (path, parameter, expression, jsonPath, supplied, ...) or a value");
      }
      if (p.value_from) {
        const ValueFrom& vf = *p.value_from;
        if (!vf.expression.empty()) CheckExprSyntax(vf.expression, vf.loc, ppath + ".valueFrom.expression");
        if (leaf && vf.path.empty() && vf.expression.empty() && !vf.supplied && vf.json_path.empty() &&
            vf.jq_filter.empty() && vf.parameter.empty() && vf.config_map_key_ref.is_null() && !vf.default_value) {
          Err(vf.loc, ppath + ".valueFrom", "valueFrom needs one of path, expression, parameter, jsonPath, jqFilter, supplied or configMapKeyRef");
        }
      }
    }
    if (t.timeout) {
      CheckDuration(t.timeout, t.timeout_loc, path + ".timeout");
      CheckRefs(*t.timeout, t.timeout_loc, path + ".timeout", scope);
    }
    CheckIntOrTemplate(t.active_deadline_seconds, t.loc, path + ".activeDeadlineSeconds", 0);
    CheckIntOrTemplate(t.parallelism, t.parallelism_loc, path + ".parallelism", 0);
    if (t.retry_strategy) CheckRetryStrategy(*t.retry_strategy, path + ".retryStrategy", scope);
    CheckVolumes(t.volumes, t.loc, path + ".volumes");
    CheckSynchronization(t.synchronization, t.loc, path + ".synchronization");
    for (const auto& [k, v] : t.node_selector) CheckRefs(v, t.loc, path + ".nodeSelector." + k, scope);
    CheckJsonRefs(t.metadata, t.loc, path + ".metadata", scope);
    CheckPodSpecPatch(t.pod_spec_patch, LocFor(path + ".podSpecPatch", t.loc), path + ".podSpecPatch", scope);

    switch (t.type) {
      case TemplateType::kContainer:
        CheckContainer(t.container, t, path + ".container", scope, is_default);
        break;
      case TemplateType::kScript:
        CheckContainer(t.script.container, t, path + ".script", scope, is_default);
        if (t.script.source.empty() && !is_default) {
          Err(t.loc, path + ".script.source", "missing required field: a script template needs source");
        }
        CheckRefs(t.script.source, LocFor(path + ".script.source", t.loc), path + ".script.source", scope);
        break;
      case TemplateType::kDag: CheckDag(t, path + ".dag"); break;
      case TemplateType::kSteps: CheckSteps(t, path + ".steps"); break;
      case TemplateType::kSuspend:
        CheckDuration(t.suspend.duration, t.loc, path + ".suspend.duration");
        break;
      case TemplateType::kResource: {
        static const std::vector<std::string_view> kActions = {"get", "create", "apply", "delete", "replace", "patch"};
        const ResourceSpec& r = t.resource;
        if (r.action.empty()) {
          Err(t.loc, path + ".resource.action", "missing required field: action (get, create, apply, delete, replace or patch)");
        } else if (!IsTemplated(r.action) && std::find(kActions.begin(), kActions.end(), r.action) == kActions.end()) {
          Err(r.action_loc, path + ".resource.action", "unknown action " + Quote(r.action) +
                                                           ": use get, create, apply, delete, replace or patch" + DidYouMean(r.action, kActions));
        }
        if (r.manifest.empty() && r.manifest_from.is_null() &&
            !((r.action == "delete" || r.action == "get") && !r.flags.empty())) {
          Err(t.loc, path + ".resource.manifest",
              "missing required field: manifest (or manifestFrom); only get and delete can name their object with "
              "flags: [TYPE, NAME] instead");
        }
        CheckRefs(r.manifest, t.loc, path + ".resource.manifest", scope);
        for (auto [text, field] : {std::pair{&r.success_condition, ".resource.successCondition"},
                                   std::pair{&r.failure_condition, ".resource.failureCondition"}}) {
          CheckRefs(*text, t.loc, path + field, scope);
          if (IsTemplated(*text)) continue;
          if (auto c = ParseResourceCondition(*text); !c) Err(t.loc, path + field, c.error().message());
        }
        bool templated_flags = false;
        for (size_t i = 0; i < r.flags.size(); ++i) {
          CheckRefs(r.flags[i], t.loc, Index(path + ".resource.flags", i), scope);
          templated_flags = templated_flags || IsTemplated(r.flags[i]);
        }
        if (!templated_flags) {
          auto f = ParseResourceFlags(r.flags);
          if (!f) {
            Err(t.loc, path + ".resource.flags", f.error().message());
          } else if (r.manifest.empty() && r.manifest_from.is_null() && !r.flags.empty() && f->type.empty()) {
            Err(t.loc, path + ".resource.flags",
                "without a manifest the flags must name the object's TYPE (e.g. [configmap, my-config] or "
                "[configmap, --selector, app=x])");
          }
        }
        if (!r.manifest_from.is_null()) {
          Warn(t.loc, path + ".resource.manifestFrom",
               "kiln's Kubernetes executor does not read a manifest from an artifact yet: the step fails; give the "
               "manifest inline (resource.manifest)");
        }
        // What kiln's Kubernetes executor refuses at run time, said before anything is created.
        if (r.set_owner_reference) {
          Warn(t.loc, path + ".resource.setOwnerReference",
               "kiln keeps no Workflow object in the cluster to own the resource: the step fails; delete the object "
               "in a later step or an onExit handler instead");
        }
        for (size_t i = 0; i < t.outputs.parameters.size(); ++i) {
          const Parameter& p = t.outputs.parameters[i];
          if (p.value_from && !p.value_from->jq_filter.empty()) {
            Warn(t.loc, Index(path + ".outputs.parameters", i) + ".valueFrom.jqFilter",
                 "kiln runs no jq: the step fails; use valueFrom.jsonPath");
          }
        }
        if (!r.merge_strategy.empty() && !IsTemplated(r.merge_strategy) && r.merge_strategy != "strategic" &&
            r.merge_strategy != "merge" && r.merge_strategy != "json") {
          Err(t.loc, path + ".resource.mergeStrategy",
              "unknown mergeStrategy " + Quote(r.merge_strategy) + ": use strategic (the default), merge or json");
        }
        break;
      }
      case TemplateType::kHttp:
        if (t.http.url.empty()) Err(t.loc, path + ".http.url", "missing required field: url");
        CheckRefs(t.http.url, t.loc, path + ".http.url", scope);
        CheckRefs(t.http.body, t.loc, path + ".http.body", scope);
        break;
      case TemplateType::kContainerSet: CheckContainerSet(t, path + ".containerSet", scope); break;
      default: break;
    }
  }

  void CheckContainer(const Json& c, const Template& t, const std::string& path, const Scope& scope, bool is_default) {
    if (!c.is_object()) return;
    if (!is_default && (!c.contains("image") || (c["image"].is_string() && c["image"].get<std::string>().empty())) &&
        !DefaultsHaveImage()) {
      Err(t.loc, path + ".image", "missing required field: image (kiln records it; Kubernetes pulls it)");
    }
    CheckJsonRefs(c, t.loc, path, scope);
  }

  void CheckContainerSet(const Template& t, const std::string& path, const Scope& scope) {
    const Json& cs = t.container_set;
    if (!cs.is_object() || !cs.contains("containers") || !cs["containers"].is_array() || cs["containers"].empty()) {
      Err(t.loc, path + ".containers", "missing required field: a containerSet needs at least one container");
      return;
    }
    std::unordered_set<std::string> names;
    for (const Json& c : cs["containers"]) {
      if (c.is_object() && c.contains("name") && c["name"].is_string()) names.insert(c["name"].get<std::string>());
    }
    for (size_t i = 0; i < cs["containers"].size(); ++i) {
      const Json& c = cs["containers"][i];
      std::string cpath = Index(path + ".containers", i);
      if (!c.is_object()) continue;
      if (!c.contains("name")) Err(t.loc, cpath + ".name", "missing required field: every container needs a name");
      if (c.contains("dependencies") && c["dependencies"].is_array()) {
        for (const Json& dep : c["dependencies"]) {
          if (dep.is_string() && !names.count(dep.get<std::string>())) {
            std::vector<std::string_view> candidates(names.begin(), names.end());
            Err(t.loc, cpath + ".dependencies", "unknown container " + Quote(dep.get<std::string>()) +
                                                    DidYouMean(dep.get<std::string>(), candidates));
          }
        }
      }
      CheckJsonRefs(c, t.loc, cpath, scope);
    }
  }

  // Template reference of a task, step or hook: exactly one of template, templateRef, inline.
  void CheckTemplateReference(const std::string& name, const Boxed<TemplateRef>& ref,
                              const Template* inline_t, Location loc, const std::string& path, std::string_view what) {
    int given = (!name.empty()) + (ref.has_value()) + (inline_t != nullptr);
    if (given == 0) {
      Err(loc, path, "a " + std::string(what) + " needs one of template, templateRef or inline");
      return;
    }
    if (given > 1) {
      Err(loc, path, "a " + std::string(what) + " takes one of template, templateRef or inline, not several");
    }
    if (!name.empty() && !IsTemplated(name) && LookupTemplate(name) == nullptr &&
        (!m_.spec.workflow_template_ref || ref_manifest_)) {
      Err(loc, path + ".template", "unknown template " + Quote(name) + DidYouMean(name, TemplateNames()));
    }
    if (ref) {
      if (ref->name.empty()) Err(ref->loc, path + ".templateRef.name", "missing required field: the WorkflowTemplate's name");
      if (ref->template_name.empty()) Err(ref->loc, path + ".templateRef.template", "missing required field: the template's name");
      if (!ref->name.empty() && !ref->template_name.empty() && !IsTemplated(ref->name)) {
        const Manifest* target = lib_.Find(ref->name, ref->cluster_scope);
        if (target == nullptr) {
          Warn(ref->loc, path + ".templateRef",
               std::string(ref->cluster_scope ? "ClusterWorkflowTemplate " : "WorkflowTemplate ") + Quote(ref->name) +
                   " is not among the linted files; the reference is not checked");
        } else if (FindTemplate(target->spec, ref->template_name) == nullptr) {
          std::vector<std::string_view> names;
          for (const Template& t : target->spec.templates) names.push_back(t.name);
          Err(ref->loc, path + ".templateRef.template",
              std::string(KindName(target->kind)) + " " + Quote(ref->name) + " has no template " +
                  Quote(ref->template_name) + DidYouMean(ref->template_name, names));
        }
      }
    }
    if (inline_t) CheckTemplateBody(*inline_t, path + ".inline", false);
  }

  void CheckArgumentRefs(const Arguments& args, const std::string& path, const Scope& scope) {
    for (size_t i = 0; i < args.parameters.size(); ++i) {
      const Parameter& p = args.parameters[i];
      std::string ppath = Index(path + ".parameters", i);
      if (p.value) CheckRefs(*p.value, p.value_loc.line ? p.value_loc : p.loc, ppath + ".value", scope);
      if (p.value_from && !p.value_from->expression.empty()) {
        CheckExprSyntax(p.value_from->expression, p.value_from->loc, ppath + ".valueFrom.expression");
      }
    }
    for (size_t i = 0; i < args.artifacts.size(); ++i) {
      const Artifact& a = args.artifacts[i];
      std::string apath = Index(path + ".artifacts", i);
      CheckRefs(a.from, a.loc, apath + ".from", scope);
      CheckRefs(a.from_expression, a.loc, apath + ".fromExpression", scope);
      CheckJsonRefs(a.storage, a.loc, apath + "." + a.storage_kind, scope);
    }
  }

  // Fields shared by DAG tasks and steps.
  void CheckInvocation(const Invocation& inv, const std::string& path, Scope scope, std::string_view what) {
    if (!inv.name.empty() && !IsTemplated(inv.name)) {
      if (auto e = ValidateArgoFieldName(inv.name)) Err(inv.name_loc, path + ".name", *e);
    }
    CheckTemplateReference(inv.template_name, inv.template_ref, inv.inline_template.get(),
                           inv.template_loc.line ? inv.template_loc : inv.loc, path, what);
    int loops = !inv.with_items.is_null() + !inv.with_param.empty() + inv.with_sequence.has_value();
    if (loops > 1) {
      Err(inv.loc, path, "a " + std::string(what) + " takes one of withItems, withParam and withSequence, not several");
    }
    scope.in_loop = loops > 0;
    if (inv.with_sequence) {
      const Sequence& s = *inv.with_sequence;
      if (s.count && s.end) {
        Err(s.loc, path + ".withSequence", "give either count or end, not both");
      }
      if (!s.count && !s.end) {
        Err(s.loc, path + ".withSequence", "missing required field: count or end");
      }
      for (const auto& [field, v] : {std::pair{"count", &s.count}, {"start", &s.start}, {"end", &s.end}}) {
        if (*v && !IsTemplated(**v) && !IsInteger(**v)) {
          Err(s.loc, path + ".withSequence." + field, "expected an integer, got " + Quote(**v));
        }
        if (*v) CheckRefs(**v, s.loc, path + ".withSequence." + field, scope);
      }
    }
    if (!inv.with_param.empty()) {
      CheckRefs(inv.with_param, inv.with_param_loc, path + ".withParam", scope);
      if (!IsTemplated(inv.with_param)) {
        auto j = Json::parse(inv.with_param, nullptr, false);
        if (j.is_discarded() || !j.is_array()) {
          Err(inv.with_param_loc, path + ".withParam", "withParam must be a JSON list or a {{...}} reference to one");
        }
      }
    }
    if (inv.with_items.is_array()) {
      std::function<void(const Json&, const std::string&)> walk = [&](const Json& j, const std::string& p) {
        if (j.is_string()) CheckRefs(j.get_ref<const std::string&>(), inv.with_items_loc, p, scope);
        else if (j.is_array()) for (size_t i = 0; i < j.size(); ++i) walk(j[i], Index(p, i));
        else if (j.is_object()) for (auto it = j.begin(); it != j.end(); ++it) walk(it.value(), p + "." + it.key());
      };
      walk(inv.with_items, path + ".withItems");
    }
    if (!inv.when.empty()) CheckWhen(inv.when, inv.when_loc, path + ".when", scope);
    CheckArgumentRefs(inv.arguments, path + ".arguments", scope);
    if (!inv.on_exit.empty() && !IsTemplated(inv.on_exit) && LookupTemplate(inv.on_exit) == nullptr &&
        (!m_.spec.workflow_template_ref || ref_manifest_)) {
      Err(inv.loc, path + ".onExit", "unknown template " + Quote(inv.on_exit) + DidYouMean(inv.on_exit, TemplateNames()));
    }
    for (const LifecycleHook& h : inv.hooks) CheckHook(h, path + ".hooks." + h.name, scope);
    // The callee's inputs without a default must be supplied.
    if (const Template* callee = ResolveInvocation(inv)) {
      for (const Parameter& p : callee->inputs.parameters) {
        if (p.value || p.default_value || p.value_from) continue;
        bool supplied = std::any_of(inv.arguments.parameters.begin(), inv.arguments.parameters.end(),
                                    [&](const Parameter& a) { return a.name == p.name; });
        if (!supplied) {
          Err(inv.loc, path + ".arguments.parameters",
              "template " + Quote(callee->name) + " needs input parameter " + Quote(p.name) + ", which this " +
                  std::string(what) + " does not supply");
        }
      }
      for (const Artifact& a : callee->inputs.artifacts) {
        if (a.optional || !a.storage_kind.empty() || !a.from.empty() || !a.from_expression.empty()) continue;
        bool supplied = std::any_of(inv.arguments.artifacts.begin(), inv.arguments.artifacts.end(),
                                    [&](const Artifact& x) { return x.name == a.name; });
        if (!supplied) {
          Err(inv.loc, path + ".arguments.artifacts",
              "template " + Quote(callee->name) + " needs input artifact " + Quote(a.name) + ", which this " +
                  std::string(what) + " does not supply");
        }
      }
    }
  }

  void CheckDag(const Template& t, const std::string& path) {
    const std::vector<Invocation>& tasks = t.dag.tasks;
    const size_t n = tasks.size();
    std::unordered_map<std::string_view, uint32_t> by_name;
    by_name.reserve(n * 2);
    std::vector<const Invocation*> list;
    list.reserve(n);
    for (uint32_t i = 0; i < n; ++i) {
      list.push_back(&tasks[i]);
      if (tasks[i].name.empty()) continue;
      auto [it, inserted] = by_name.emplace(tasks[i].name, i);
      if (!inserted) {
        Err(tasks[i].name_loc, Index(path + ".tasks", i) + ".name",
            "duplicate task name " + Quote(tasks[i].name) + " (also at " + Index(path + ".tasks", it->second) + ")");
      }
    }
    std::vector<std::string_view> all_names;
    all_names.reserve(n);
    for (const auto& [name, idx] : by_name) all_names.push_back(name);
    std::sort(all_names.begin(), all_names.end());

    // Edges: task -> the tasks it depends on.
    std::vector<std::vector<uint32_t>> deps(n);
    bool any_depends = false, any_dependencies = false;
    for (uint32_t i = 0; i < n; ++i) {
      const Invocation& task = tasks[i];
      std::string tpath = Index(path + ".tasks", i);
      if (task.has_depends) any_depends = true;
      if (!task.dependencies.empty()) any_dependencies = true;
      if (task.has_depends) {
        auto parsed = expr::ParseDepends(task.depends);
        if (!parsed) {
          Err(task.depends_loc, tpath + ".depends", "invalid depends expression " + Quote(task.depends) + ": " + parsed.error().message);
        } else {
          for (const expr::DependsRef& ref : parsed->refs()) {
            auto it = by_name.find(ref.task);
            if (it == by_name.end()) {
              Err(task.depends_loc, tpath + ".depends", "unknown task " + Quote(ref.task) + DidYouMean(ref.task, all_names));
            } else if (it->second == i) {
              Err(task.depends_loc, tpath + ".depends", "task " + Quote(task.name) + " depends on itself");
            } else {
              deps[i].push_back(it->second);
            }
          }
        }
      }
      for (const std::string& dep : task.dependencies) {
        auto it = by_name.find(dep);
        if (it == by_name.end()) {
          Err(task.dependencies_loc, tpath + ".dependencies", "unknown task " + Quote(dep) + DidYouMean(dep, all_names));
        } else if (it->second == i) {
          Err(task.dependencies_loc, tpath + ".dependencies", "task " + Quote(task.name) + " depends on itself");
        } else {
          deps[i].push_back(it->second);
        }
      }
      std::sort(deps[i].begin(), deps[i].end());
      deps[i].erase(std::unique(deps[i].begin(), deps[i].end()), deps[i].end());
    }
    if (any_depends && any_dependencies) {
      Err(t.dag.loc, path, "use either depends or dependencies in one dag template, not both");
    }
    if (!t.dag.target.empty() && !IsTemplated(t.dag.target)) {
      for (std::string_view target : Split(t.dag.target, ' ')) {
        if (target.empty()) continue;
        if (!by_name.count(target)) {
          Err(t.dag.loc, path + ".target", "unknown task " + Quote(target) + DidYouMean(target, all_names));
        }
      }
    }
    bool has_cycle = ReportCycles(deps, tasks, path);

    // Ancestor check for {{tasks.X...}}: BFS over dependencies, with an epoch-stamped visited set.
    std::vector<uint32_t> stamp(n, 0);
    uint32_t epoch = 0;
    std::vector<uint32_t> queue;
    for (uint32_t i = 0; i < n; ++i) {
      Scope scope;
      scope.tmpl = &t;
      scope.kind = Scope::Kind::kDag;
      scope.siblings = &by_name;
      scope.sibling_list = &list;
      scope.may_reference = [&, i](uint32_t other) {
        if (has_cycle) return true;
        ++epoch;
        queue.clear();
        queue.push_back(i);
        stamp[i] = epoch;
        for (size_t q = 0; q < queue.size(); ++q) {
          for (uint32_t d : deps[queue[q]]) {
            if (d == other) return true;
            if (stamp[d] != epoch) {
              stamp[d] = epoch;
              queue.push_back(d);
            }
          }
        }
        return false;
      };
      CheckInvocation(tasks[i], Index(path + ".tasks", i), scope, "task");
    }
    // The template's own outputs may read any task.
    Scope out_scope;
    out_scope.tmpl = &t;
    out_scope.kind = Scope::Kind::kDag;
    out_scope.siblings = &by_name;
    out_scope.sibling_list = &list;
    CheckTemplateOutputsRefs(t, path, out_scope);
  }

  void CheckTemplateOutputsRefs(const Template& t, const std::string& path, const Scope& scope) {
    std::string base = path.substr(0, path.rfind('.'));
    for (size_t i = 0; i < t.outputs.parameters.size(); ++i) {
      const Parameter& p = t.outputs.parameters[i];
      if (!p.value_from) continue;
      std::string ppath = Index(base + ".outputs.parameters", i) + ".valueFrom";
      CheckRefs(p.value_from->parameter, p.value_from->loc, ppath + ".parameter", scope);
      if (p.value_from->default_value) CheckRefs(*p.value_from->default_value, p.value_from->loc, ppath + ".default", scope);
    }
    for (size_t i = 0; i < t.outputs.artifacts.size(); ++i) {
      const Artifact& a = t.outputs.artifacts[i];
      CheckRefs(a.from, a.loc, Index(base + ".outputs.artifacts", i) + ".from", scope);
    }
  }

  // Reports each dependency cycle once, as "a -> b -> c -> a". Returns whether any was found.
  bool ReportCycles(const std::vector<std::vector<uint32_t>>& deps, const std::vector<Invocation>& tasks,
                    const std::string& path) {
    const size_t n = deps.size();
    enum : uint8_t { kWhite, kGrey, kBlack };
    std::vector<uint8_t> color(n, kWhite);
    bool found = false;
    struct Frame { uint32_t node; size_t next; };
    std::vector<Frame> stack;
    for (uint32_t start = 0; start < n; ++start) {
      if (color[start] != kWhite) continue;
      stack.push_back({start, 0});
      color[start] = kGrey;
      while (!stack.empty()) {
        Frame& f = stack.back();
        if (f.next < deps[f.node].size()) {
          uint32_t d = deps[f.node][f.next++];
          if (color[d] == kWhite) {
            color[d] = kGrey;
            stack.push_back({d, 0});
          } else if (color[d] == kGrey) {
            // A cycle: from d up the stack to the top, printed in "runs before" order.
            size_t from = stack.size();
            while (from > 0 && stack[from - 1].node != d) --from;
            std::vector<uint32_t> cycle;
            for (size_t k = from - 1; k < stack.size(); ++k) cycle.push_back(stack[k].node);
            // The stack follows "depends on"; reversed it is execution order. Start the cycle at
            // the task declared first, so the message does not depend on where the walk began.
            std::reverse(cycle.begin(), cycle.end());
            std::rotate(cycle.begin(), std::min_element(cycle.begin(), cycle.end()), cycle.end());
            std::string text;
            for (uint32_t c : cycle) text += tasks[c].name + " -> ";
            text += tasks[cycle.front()].name;
            uint32_t at = cycle.front();
            Err(tasks[at].depends_loc.line ? tasks[at].depends_loc : tasks[at].dependencies_loc.line ? tasks[at].dependencies_loc : tasks[at].loc,
                Index(path + ".tasks", at) + (tasks[at].has_depends ? ".depends" : ".dependencies"),
                "dependency cycle: " + text);
            found = true;
          }
        } else {
          color[f.node] = kBlack;
          stack.pop_back();
        }
      }
    }
    return found;
  }

  void CheckSteps(const Template& t, const std::string& path) {
    std::unordered_map<std::string_view, uint32_t> by_name;
    std::vector<const Invocation*> list;
    std::vector<uint32_t> group_of;
    for (size_t g = 0; g < t.steps.size(); ++g) {
      for (size_t i = 0; i < t.steps[g].size(); ++i) {
        const Invocation& s = t.steps[g][i];
        uint32_t idx = static_cast<uint32_t>(list.size());
        list.push_back(&s);
        group_of.push_back(static_cast<uint32_t>(g));
        if (s.name.empty()) continue;
        auto [it, inserted] = by_name.emplace(s.name, idx);
        if (!inserted) {
          Err(s.name_loc, Index(Index(path, g), i) + ".name", "duplicate step name " + Quote(s.name));
        }
      }
    }
    uint32_t idx = 0;
    for (size_t g = 0; g < t.steps.size(); ++g) {
      if (t.steps[g].empty()) {
        Err(t.steps_loc, Index(path, g), "a step group needs at least one step");
      }
      for (size_t i = 0; i < t.steps[g].size(); ++i, ++idx) {
        Scope scope;
        scope.tmpl = &t;
        scope.kind = Scope::Kind::kSteps;
        scope.siblings = &by_name;
        scope.sibling_list = &list;
        uint32_t my_group = static_cast<uint32_t>(g);
        scope.may_reference = [&group_of, my_group](uint32_t other) { return group_of[other] < my_group; };
        CheckInvocation(t.steps[g][i], Index(Index(path, g), i), scope, "step");
      }
    }
    Scope out_scope;
    out_scope.tmpl = &t;
    out_scope.kind = Scope::Kind::kSteps;
    out_scope.siblings = &by_name;
    out_scope.sibling_list = &list;
    CheckTemplateOutputsRefs(t, path, out_scope);
  }

  // ---- CronWorkflow --------------------------------------------------------------------------
  void CheckCron() {
    const CronSpec& c = *m_.cron;
    if (c.schedules.empty()) {
      Err(m_.spec.loc, "spec.schedules", "missing required field: a CronWorkflow needs schedule or schedules");
    }
    for (size_t i = 0; i < c.schedules.size(); ++i) {
      auto s = ParseCronSchedule(c.schedules[i]);
      if (!s) Err(c.schedule_locs[i], "spec.schedules[" + std::to_string(i) + "]", s.error());
    }
    if (!c.timezone.empty()) {
      auto tz = LookupTimeZone(c.timezone);
      if (!tz) Err(c.timezone_loc, "spec.timezone", tz.error());
    }
    static const std::vector<std::string_view> kPolicies = {"Allow", "Forbid", "Replace"};
    if (!c.concurrency_policy.empty() &&
        std::find(kPolicies.begin(), kPolicies.end(), c.concurrency_policy) == kPolicies.end()) {
      Err(c.concurrency_policy_loc, "spec.concurrencyPolicy",
          "unknown concurrencyPolicy " + Quote(c.concurrency_policy) + ": use Allow, Forbid or Replace" +
              DidYouMean(c.concurrency_policy, kPolicies));
    }
    if (c.starting_deadline_seconds && *c.starting_deadline_seconds < 0) {
      Err(m_.spec.loc, "spec.startingDeadlineSeconds", "must be at least 0");
    }
    if (!c.when.empty()) {
      auto tags = expr::FindTags(c.when);
      if (!tags) {
        Err(c.when_loc, "spec.when", "invalid template: " + tags.error().message);
      } else {
        for (const auto& tag : *tags) {
          if (tag.is_expression) CheckExprSyntax(tag.body, c.when_loc, "spec.when");
        }
      }
    }
  }

  void CheckEventBinding() {
    if (!m_.event) return;  // spec was missing or malformed; the parser reported it
    const EventBindingSpec& e = *m_.event;
    if (e.selector.empty()) {
      Err(m_.loc, "spec.event.selector", "missing required field: the expression selecting events");
    } else {
      CheckExprSyntax(e.selector, e.selector_loc, "spec.event.selector");
    }
    if (e.workflow_template_ref && e.workflow_template_ref->name.empty()) {
      Err(e.workflow_template_ref->loc, "spec.submit.workflowTemplateRef.name", "missing required field: name");
    }
  }

  const Manifest& m_;
  const TemplateLibrary& lib_;
  Diagnostics& d_;
  std::string sp_;
  const Manifest* ref_manifest_ = nullptr;
  std::unordered_set<std::string> wf_params_;
  std::unordered_set<std::string> global_params_;
  std::unordered_set<std::string> global_artifacts_;
};

}  // namespace

void Validate(const Manifest& manifest, const TemplateLibrary& library, Diagnostics& diags) {
  try {
    Validator(manifest, library, diags).Run();
  } catch (const std::exception& e) {
    // Validation must never take the process down on odd input; say what happened instead.
    diags.Error(manifest.file, manifest.loc, "", std::string("internal error while validating: ") + e.what());
  }
}

}  // namespace kiln::dag
