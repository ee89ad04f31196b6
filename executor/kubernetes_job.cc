#include "executor/kubernetes_job.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <set>

#include "dag/parse.h"
#include "kube/strategic_merge.h"

namespace kiln::executor {

namespace {

using nlohmann::json;

// FNV-1a 64 over the parts, with a separator that cannot occur in them.
std::string Hash8(std::initializer_list<std::string_view> parts) {
  uint64_t h = 1469598103934665603ULL;
  for (std::string_view p : parts) {
    for (unsigned char c : p) {
      h ^= c;
      h *= 1099511628211ULL;
    }
    h ^= 0xff;
    h *= 1099511628211ULL;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return std::string(buf, 8);
}

bool IsAlnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

void TrimNonAlnum(std::string& s) {
  while (!s.empty() && !IsAlnum(s.back())) s.pop_back();
  size_t i = 0;
  while (i < s.size() && !IsAlnum(s[i])) ++i;
  s.erase(0, i);
}

bool Truthy(const json& j) { return !j.is_null() && !(j.is_array() && j.empty()) && !(j.is_object() && j.empty()); }

// Argo's UserContainer fields that are not Kubernetes Container fields.
json UserContainer(json c) {
  if (c.is_object()) c.erase("mirrorVolumeMounts");
  return c;
}

void MergeStringMap(json& into, const json& from) {
  if (!from.is_object()) return;
  for (auto it = from.begin(); it != from.end(); ++it) {
    into[it.key()] = it.value().is_string() ? it.value() : json(it.value().dump());
  }
}

bool RequestsGpu(const json& container) {
  const json* res = container.is_object() && container.contains("resources") ? &container["resources"] : nullptr;
  if (!res || !res->is_object()) return false;
  for (const char* kind : {"limits", "requests"}) {
    if (!res->contains(kind) || !(*res)[kind].is_object()) continue;
    auto it = (*res)[kind].find("nvidia.com/gpu");
    if (it == (*res)[kind].end()) continue;
    std::string v = it->is_string() ? it->get<std::string>() : it->dump();
    if (!v.empty() && v != "0") return true;
  }
  return false;
}

// The volume names the containers mount.
void MountedVolumes(const json& container, std::set<std::string>& names) {
  if (!container.is_object() || !container.contains("volumeMounts") || !container["volumeMounts"].is_array()) return;
  for (const json& m : container["volumeMounts"]) {
    if (m.is_object() && m.contains("name") && m["name"].is_string()) names.insert(m["name"].get<std::string>());
  }
}

}  // namespace

std::string LabelValue(std::string_view s) {
  std::string out;
  for (char c : s) out += IsAlnum(c) || c == '-' || c == '_' || c == '.' ? c : '-';
  TrimNonAlnum(out);
  if (out == s && out.size() <= 63) return out;
  if (s.empty()) return "";
  std::string hash = Hash8({s});
  if (out.size() > 63 - 9) out.resize(63 - 9);
  TrimNonAlnum(out);
  return out.empty() ? hash : out + "-" + hash;
}

std::string JobName(std::string_view workflow_uid, std::string_view node, int attempt, int fallback) {
  std::string base;
  for (char c : node) {
    char l = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    char mapped = (l >= 'a' && l <= 'z') || (l >= '0' && l <= '9') ? l : '-';
    if (mapped == '-' && (base.empty() || base.back() == '-')) continue;
    base += mapped;
  }
  std::string hash = fallback == 0 ? Hash8({workflow_uid, node, std::to_string(attempt)})
                                   : Hash8({workflow_uid, node, std::to_string(attempt), std::to_string(fallback)});
  std::string suffix = "-" + std::to_string(attempt) + "-" + hash;
  if (base.size() + suffix.size() > 63) base.resize(63 - suffix.size());
  TrimNonAlnum(base);
  if (base.empty()) base = "step";
  return base + suffix;
}

bool ToleratesGpuTaint(const json& tolerations) {
  if (!tolerations.is_array()) return false;
  for (const json& t : tolerations) {
    if (!t.is_object()) continue;
    std::string key = t.value("key", "");
    std::string op = t.value("operator", "Equal");
    std::string effect = t.value("effect", "");
    bool key_ok = key == "nvidia.com/gpu" || (key.empty() && op == "Exists");
    bool effect_ok = effect.empty() || effect == "NoSchedule";
    if (key_ok && effect_ok) return true;
  }
  return false;
}

json PodAnnotations(const scheduler::LaunchStep& step, const JobContext& ctx) {
  json annotations = json::object();
  if (ctx.spec && ctx.spec->pod_metadata.is_object()) {
    MergeStringMap(annotations, ctx.spec->pod_metadata.value("annotations", json::object()));
  }
  if (step.tmpl && step.tmpl->metadata.is_object()) {
    MergeStringMap(annotations, step.tmpl->metadata.value("annotations", json::object()));
  }
  return annotations;
}

namespace {

// `text` with every '$' doubled: what Kubernetes' $(VAR) expansion of command, args and env values
// turns back into `text`.
std::string EscapeDollars(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    out += ch;
    if (ch == '$') out += '$';
  }
  return out;
}

// What the agent's --artifacts says (cli/exec.cc): the inputs to place, with their refs (no
// location: the agent reads its own mount), and the outputs to store.
json AgentArtifacts(const scheduler::LaunchStep& step) {
  json inputs = json::array(), outputs = json::array();
  auto optional_input = [&](const std::string& name) {
    return step.tmpl && std::any_of(step.tmpl->inputs.artifacts.begin(), step.tmpl->inputs.artifacts.end(),
                                    [&](const dag::Artifact& x) { return x.name == name && x.optional; });
  };
  for (const scheduler::InputArtifact& a : step.input_artifacts) {
    if (a.path.empty()) continue;
    scheduler::ArtifactRef ref = a.ref;
    ref.location.clear();
    inputs.push_back({{"name", a.name}, {"path", a.path}, {"ref", ref.ToJson()}, {"optional", optional_input(a.name)}});
  }
  if (step.tmpl) {
    for (const dag::Artifact& a : step.tmpl->outputs.artifacts) {
      if (a.path.empty()) continue;
      json out = {{"name", a.name}, {"path", a.path}, {"optional", a.optional}};
      if (auto key = step.output_artifact_keys.find(a.name); key != step.output_artifact_keys.end()) {
        out["key"] = key->second;
        if (!a.archive.is_null()) out["archive"] = a.archive;
      }
      outputs.push_back(std::move(out));
    }
  }
  return {{"inputs", std::move(inputs)}, {"outputs", std::move(outputs)}};
}

}  // namespace

std::string WorkflowClaimName(std::string_view workflow, std::string_view name) {
  return std::string(workflow) + "-" + std::string(name);
}

Result<std::vector<json>> WorkflowClaims(const JobContext& ctx) {
  std::vector<json> claims;
  if (!ctx.spec || !ctx.spec->volume_claim_templates.is_array()) return claims;
  for (const json& t : ctx.spec->volume_claim_templates) {
    std::string name = t.contains("metadata") && t["metadata"].is_object() ? t["metadata"].value("name", "") : "";
    if (name.empty()) continue;
    json pvc = t;
    pvc["apiVersion"] = "v1";
    pvc["kind"] = "PersistentVolumeClaim";
    pvc.erase("status");
    json& meta = pvc["metadata"];
    std::string claim = WorkflowClaimName(ctx.workflow, name);
    if (claim.size() > 253) {
      return MakeError(Code::kInvalidArgument,
                       "the claim name " + claim + " is longer than 253 characters; shorten the workflow's name or "
                       "the volumeClaimTemplate's metadata.name",
                       "spec.volumeClaimTemplates[" + name + "]");
    }
    meta["name"] = claim;
    meta["namespace"] = ctx.namespace_;
    for (const char* k : {"uid", "resourceVersion", "creationTimestamp", "generateName"}) meta.erase(k);
    if (!meta.contains("labels") || !meta["labels"].is_object()) meta["labels"] = json::object();
    meta["labels"][std::string(kLabelWorkflow)] = LabelValue(ctx.workflow);
    meta["labels"][std::string(kLabelWorkflowUid)] = LabelValue(ctx.workflow_uid);
    claims.push_back(std::move(pvc));
  }
  return claims;
}

bool CollectClaims(const dag::WorkflowSpec& spec, bool succeeded) {
  std::string strategy = spec.volume_claim_gc.is_object() ? spec.volume_claim_gc.value("strategy", "") : "";
  if (strategy == "OnWorkflowCompletion") return true;
  return succeeded;  // OnWorkflowSuccess, Argo's default: a failed workflow's claims stay for a look
}

Result<json> BuildJob(const scheduler::LaunchStep& step, const JobContext& ctx, int fallback) {
  const std::string where = step.node;
  if (!step.tmpl) return MakeError(Code::kInvalidArgument, "the step has no template", where);
  const dag::Template& t = *step.tmpl;
  if (t.type != dag::TemplateType::kContainer && t.type != dag::TemplateType::kScript) {
    return MakeError(Code::kInvalidArgument,
                     "the Kubernetes executor runs container and script templates; a " +
                         std::string(dag::TemplateTypeName(t.type)) + " template is not supported yet",
                     where);
  }
  // Artifacts: the agent places the inputs and stores the outputs in the artifact volume; an
  // input given inline (raw) needs no volume.
  json agent_artifacts = AgentArtifacts(step);
  const bool needs_volume = !agent_artifacts["outputs"].empty() ||
                            std::any_of(step.input_artifacts.begin(), step.input_artifacts.end(),
                                        [](const scheduler::InputArtifact& a) { return !a.ref.raw_given; });
  const bool has_artifacts = !agent_artifacts["inputs"].empty() || !agent_artifacts["outputs"].empty();
  if (has_artifacts && ctx.agent_image.empty() && ctx.agent_path.empty()) {
    return MakeError(Code::kInvalidArgument,
                     "artifacts on Kubernetes need the kiln exec agent in the step's pod: run kiln with "
                     "--agent-image IMAGE (or --agent-path PATH)",
                     where);
  }
  if (needs_volume && ctx.artifact_pvc.empty()) {
    return MakeError(Code::kInvalidArgument,
                     "artifacts on Kubernetes need the artifact repository's volume: run kiln with "
                     "--artifact-pvc CLAIM (a ReadWriteMany PersistentVolumeClaim, see deploy/)",
                     where);
  }
  const dag::WorkflowSpec* spec = ctx.spec;

  json container = step.container.is_object() ? step.container : json::object();
  container["name"] = "main";
  if (!container.contains("terminationMessagePolicy")) container["terminationMessagePolicy"] = "FallbackToLogsOnError";
  json extra_volumes = json::array();
  if (t.type == dag::TemplateType::kScript) {
    // As Argo: the source becomes a file, passed as the last argument to the command.
    if (!container.contains("command") || !container["command"].is_array() || container["command"].empty()) {
      return MakeError(Code::kInvalidArgument, "a script template needs a command (e.g. [python])", where);
    }
    json argv = json::array({"/bin/sh", "-c",
                             "printf '%s' \"$KILN_SCRIPT_SOURCE\" > /argo/staging/script && "
                             "chmod 755 /argo/staging/script && exec \"$@\" /argo/staging/script",
                             "kiln-script"});
    for (const json& a : container["command"]) argv.push_back(a);
    if (container.contains("args") && container["args"].is_array()) {
      for (const json& a : container["args"]) argv.push_back(a);
    }
    container["command"] = std::move(argv);
    container.erase("args");
    if (!container.contains("env") || !container["env"].is_array()) container["env"] = json::array();
    // Kubernetes expands $(VAR) and $$ in env values too: the source is escaped so that the
    // script gets `echo $$` or `$(date)` as written.
    container["env"].push_back({{"name", "KILN_SCRIPT_SOURCE"}, {"value", EscapeDollars(step.script_source)}});
    if (!container.contains("volumeMounts") || !container["volumeMounts"].is_array()) {
      container["volumeMounts"] = json::array();
    }
    container["volumeMounts"].push_back({{"name", "kiln-staging"}, {"mountPath", "/argo/staging"}});
    extra_volumes.push_back({{"name", "kiln-staging"}, {"emptyDir", json::object()}});
  }

  json pod = json::object();
  pod["restartPolicy"] = "Never";
  json init = json::array();
  // The agent: `kiln exec ... -- <the command>` reports outputs.result and output parameters.
  std::string agent = ctx.agent_path;
  if (!ctx.agent_image.empty()) {
    agent = "/kiln-agent/kiln";
    init.push_back({{"name", "kiln-agent"},
                    {"image", ctx.agent_image},
                    {"command", json::array({"cp", "/usr/local/bin/kiln", agent})},
                    {"volumeMounts", json::array({{{"name", "kiln-agent"}, {"mountPath", "/kiln-agent"}}})}});
    if (!container.contains("volumeMounts") || !container["volumeMounts"].is_array()) {
      container["volumeMounts"] = json::array();
    }
    container["volumeMounts"].push_back({{"name", "kiln-agent"}, {"mountPath", "/kiln-agent"}});
    extra_volumes.push_back({{"name", "kiln-agent"}, {"emptyDir", json::object()}});
  }
  if (!agent.empty()) {
    if (!container.contains("command") || !container["command"].is_array() || container["command"].empty()) {
      return MakeError(Code::kInvalidArgument,
                       "the kiln exec agent needs the step's command: kiln cannot read the image's entrypoint "
                       "(set container.command)",
                       where);
    }
    json argv = json::array({agent, "exec"});
    // The status manager keeps the first 12288 / (containers + initContainers) bytes of each
    // termination message (the kubelet the last 4096 of the file).
    size_t containers = 1 + init.size() + (t.init_containers.is_array() ? t.init_containers.size() : 0) +
                        (t.sidecars.is_array() ? t.sidecars.size() : 0);
    size_t limit = std::min<size_t>(4096, 12288 / containers);
    if (limit < 4096) {
      argv.push_back("--message-limit");
      argv.push_back(std::to_string(limit));
    }
    for (const dag::Parameter& p : t.outputs.parameters) {
      if (p.value_from && !p.value_from->path.empty()) {
        argv.push_back("--param");
        argv.push_back(p.name + "=" + p.value_from->path);
      }
    }
    // With the artifact volume configured every agent mounts it: outputs too large for a
    // termination message go there (cli/exec.cc), whatever the step's artifacts.
    const bool mount_repo = needs_volume || !ctx.artifact_pvc.empty();
    if (has_artifacts || mount_repo) {
      argv.push_back("--artifact-root");
      argv.push_back(mount_repo ? ctx.artifact_mount : "/tmp/kiln-artifacts");
    }
    if (has_artifacts) {
      argv.push_back("--artifacts");
      argv.push_back(agent_artifacts.dump());
    }
    if (mount_repo) {
      if (!container.contains("volumeMounts") || !container["volumeMounts"].is_array()) {
        container["volumeMounts"] = json::array();
      }
      container["volumeMounts"].push_back({{"name", "kiln-artifacts"}, {"mountPath", ctx.artifact_mount}});
      extra_volumes.push_back({{"name", "kiln-artifacts"}, {"persistentVolumeClaim", {{"claimName", ctx.artifact_pvc}}}});
    }
    if (container.contains("terminationMessagePath") && container["terminationMessagePath"].is_string()) {
      argv.push_back("--termination-log");
      argv.push_back(container["terminationMessagePath"]);
    }
    // Kubernetes expands $(VAR) in a container's command and turns $$ into $: the agent's own
    // arguments (raw artifact data, paths, keys) must reach it as written.
    for (json& a : argv) a = EscapeDollars(a.get<std::string>());
    argv.push_back("--");
    for (const json& a : container["command"]) argv.push_back(a);
    if (container.contains("args") && container["args"].is_array()) {
      for (const json& a : container["args"]) argv.push_back(a);
    }
    container["command"] = std::move(argv);
    container.erase("args");
  }
  if (t.init_containers.is_array()) {
    for (const json& c : t.init_containers) init.push_back(UserContainer(c));
  }
  if (t.sidecars.is_array()) {
    // Native sidecars (Kubernetes 1.29+): they stop when the main container ends, so the Job
    // completes.
    for (const json& c : t.sidecars) {
      json s = UserContainer(c);
      s["restartPolicy"] = "Always";
      init.push_back(std::move(s));
    }
  }
  if (!init.empty()) pod["initContainers"] = init;

  // kiln's own volumes; the workflow's are added after podSpecPatch, which may mount more.
  if (!extra_volumes.empty()) pod["volumes"] = extra_volumes;

  // Template fields override the workflow's defaults.
  json node_selector = json::object();
  if (spec) {
    for (const auto& [k, v] : spec->node_selector) node_selector[k] = v;
  }
  for (const auto& [k, v] : t.node_selector) node_selector[k] = v;
  if (!node_selector.empty()) pod["nodeSelector"] = node_selector;
  auto pick = [&](const json& own, const json* fallback) -> json {
    if (Truthy(own)) return own;
    if (fallback && Truthy(*fallback)) return *fallback;
    return nullptr;
  };
  if (json a = pick(t.affinity, spec ? &spec->affinity : nullptr); !a.is_null()) pod["affinity"] = a;
  if (json tolerations = pick(t.tolerations, spec ? &spec->tolerations : nullptr); !tolerations.is_null()) {
    pod["tolerations"] = tolerations;
  }
  if (json s = pick(t.security_context, spec ? &spec->security_context : nullptr); !s.is_null()) {
    pod["securityContext"] = s;
  }
  if (json h = pick(t.host_aliases, spec ? &spec->host_aliases : nullptr); !h.is_null()) pod["hostAliases"] = h;
  std::string sa = !t.service_account_name.empty() ? t.service_account_name : spec ? spec->service_account_name : "";
  if (!sa.empty()) pod["serviceAccountName"] = sa;
  std::optional<bool> automount = t.automount_service_account_token;
  if (!automount && spec) automount = spec->automount_service_account_token;
  if (automount) pod["automountServiceAccountToken"] = *automount;
  std::string pc = !t.priority_class_name.empty() ? t.priority_class_name : spec ? spec->pod_priority_class_name : "";
  if (!pc.empty()) pod["priorityClassName"] = pc;
  std::optional<int64_t> priority = t.priority;
  if (!priority && spec) priority = spec->priority;
  if (priority && pc.empty()) pod["priority"] = *priority;
  std::string scheduler = !t.scheduler_name.empty() ? t.scheduler_name : spec ? spec->scheduler_name : "";
  if (!scheduler.empty()) pod["schedulerName"] = scheduler;
  if (spec) {
    if (Truthy(spec->image_pull_secrets)) pod["imagePullSecrets"] = spec->image_pull_secrets;
    if (Truthy(spec->dns_config)) pod["dnsConfig"] = spec->dns_config;
    if (!spec->dns_policy.empty()) pod["dnsPolicy"] = spec->dns_policy;
    if (spec->host_network) pod["hostNetwork"] = *spec->host_network;
  }
  pod["containers"] = json::array({container});

  // podSpecPatch, the workflow's then the template's, as Argo applies it: a strategic merge
  // onto the pod kiln built (the main container is "main").
  for (const std::string& text : step.pod_spec_patches) {
    auto patch = dag::YamlToJson("podSpecPatch", text);
    if (!patch || !patch->is_object()) {
      return MakeError(Code::kInvalidArgument,
                       "podSpecPatch is not a YAML or JSON object" +
                           (patch ? std::string(" (it is ") + (patch->is_array() ? "an " : "a ") + patch->type_name() + ")"
                                  : ": " + patch.error().message()) +
                           "; fix the template's podSpecPatch (or the workflow's spec.podSpecPatch)",
                       where);
    }
    try {
      pod = kube::StrategicMerge(pod, *patch);
    } catch (const json::exception& e) {
      return MakeError(Code::kInvalidArgument, std::string("podSpecPatch cannot be applied: ") + e.what(), where);
    }
  }

  // Volumes: the workflow's and the template's (LaunchStep::volumes) that some container of
  // the pod mounts and the pod does not define itself (a patch may), before kiln's own.
  std::set<std::string> mounted, defined;
  for (const char* list : {"containers", "initContainers"}) {
    if (auto cs = pod.find(list); cs != pod.end() && cs->is_array()) {
      for (const json& c : *cs) MountedVolumes(c, mounted);
    }
  }
  json volumes = json::array();
  if (auto own = pod.find("volumes"); own != pod.end() && own->is_array()) {
    for (const json& v : *own) {
      if (v.is_object() && v.contains("name") && v["name"].is_string()) defined.insert(v["name"].get<std::string>());
    }
  }
  if (step.volumes.is_array()) {
    for (json v : step.volumes) {
      std::string name = v.is_object() ? v.value("name", "") : "";
      if (name.empty() || !mounted.count(name) || defined.count(name)) continue;
      if (v.value("kiln.dev/per-workflow", false)) {
        v["persistentVolumeClaim"]["claimName"] = WorkflowClaimName(ctx.workflow, name);
        v.erase("kiln.dev/per-workflow");
      }
      volumes.push_back(std::move(v));
    }
  }
  if (auto own = pod.find("volumes"); own != pod.end() && own->is_array()) {
    for (const json& v : *own) volumes.push_back(v);
  }
  if (!volumes.empty()) pod["volumes"] = std::move(volumes);

  // GPU placement, on the patched pod (a patch may set the GPU limit): a container that asks
  // for nvidia.com/gpu gets the taint's toleration, and the accelerator profile's node affinity.
  bool requests_gpu = false;
  if (auto cs = pod.find("containers"); cs != pod.end() && cs->is_array()) {
    for (const json& c : *cs) requests_gpu = requests_gpu || RequestsGpu(c);
  }
  json tolerations = pod.contains("tolerations") ? pod["tolerations"] : json(nullptr);
  if (requests_gpu && !ToleratesGpuTaint(tolerations)) {
    if (!tolerations.is_array()) tolerations = json::array();
    tolerations.push_back({{"key", "nvidia.com/gpu"}, {"operator", "Exists"}, {"effect", "NoSchedule"}});
    pod["tolerations"] = tolerations;
  }
  // Accelerator profiles: the chosen one as required node affinity (kiln.dev/accelerator).
  const AcceleratorProfiles& profiles = ctx.accelerators ? *ctx.accelerators : BuiltinAccelerators();
  auto placement = PlacementOf(PodAnnotations(step, ctx), profiles);
  if (!placement) return MakeError(Code::kInvalidArgument, placement.error().message(), where);
  std::string accelerator;
  if (!placement->accelerators.empty()) {
    if (fallback < 0 || static_cast<size_t>(fallback) >= placement->accelerators.size()) {
      return MakeError(Code::kInvalidArgument, "no accelerator left to try", where);
    }
    accelerator = placement->accelerators[static_cast<size_t>(fallback)];
    RequireNodeTerms(pod, profiles.Find(accelerator)->terms);
  } else if (!requests_gpu && !profiles.cpu_only().empty()) {
    RequireNodeTerms(pod, json::array({{{"matchExpressions", profiles.cpu_only()}}}));
  }

  // Labels: the workflow's podMetadata, the template's metadata, then kiln's own (which win).
  json labels = json::object();
  json annotations = json::object();
  if (spec && spec->pod_metadata.is_object()) {
    MergeStringMap(labels, spec->pod_metadata.value("labels", json::object()));
    MergeStringMap(annotations, spec->pod_metadata.value("annotations", json::object()));
  }
  if (t.metadata.is_object()) {
    MergeStringMap(labels, t.metadata.value("labels", json::object()));
    MergeStringMap(annotations, t.metadata.value("annotations", json::object()));
  }
  json kiln_labels = {{std::string(kLabelWorkflow), LabelValue(ctx.workflow)},
                      {std::string(kLabelNode), LabelValue(step.node)},
                      {std::string(kLabelAttempt), std::to_string(step.attempt)},
                      {std::string(kLabelWorkflowUid), LabelValue(ctx.workflow_uid)}};
  json kiln_annotations = {{std::string(kAnnotationNode), step.node},
                           {std::string(kAnnotationWorkflowUid), ctx.workflow_uid}};
  if (!accelerator.empty()) kiln_annotations[std::string(kAnnotationAcceleratorProfile)] = accelerator;
  labels.update(kiln_labels);
  annotations.update(kiln_annotations);

  json job_spec = {
      {"backoffLimit", 0},
      {"podFailurePolicy",
       {{"rules", json::array({{{"action", "Ignore"},
                                {"onPodConditions", json::array({{{"type", "DisruptionTarget"}}})}}})}}},
      {"template", {{"metadata", {{"labels", labels}, {"annotations", annotations}}}, {"spec", pod}}},
  };
  if (t.active_deadline_seconds) {
    const std::string& s = *t.active_deadline_seconds;
    bool digits = !s.empty() && s.find_first_not_of("0123456789") == std::string::npos && s.size() < 12;
    if (digits && std::stoll(s) > 0) job_spec["activeDeadlineSeconds"] = std::stoll(s);
  }
  if (ctx.ttl_seconds_after_finished) job_spec["ttlSecondsAfterFinished"] = *ctx.ttl_seconds_after_finished;
  return json{{"apiVersion", "batch/v1"},
              {"kind", "Job"},
              {"metadata",
               {{"name", JobName(ctx.workflow_uid, step.node, step.attempt, fallback)},
                {"namespace", ctx.namespace_},
                {"labels", kiln_labels},
                {"annotations", kiln_annotations}}},
              {"spec", job_spec}};
}

std::optional<TerminationOutputs> ParseTerminationMessage(std::string_view message) {
  size_t i = message.find_first_not_of(" \t\r\n");
  if (i == std::string_view::npos || message[i] != '{') return std::nullopt;
  json j = json::parse(message, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  TerminationOutputs out;
  if (auto stored = j.find("outputs"); stored != j.end() && stored->is_object() && stored->contains("sha256") &&
                                       (*stored)["sha256"].is_string()) {
    scheduler::ArtifactRef ref;
    ref.sha256 = (*stored)["sha256"].get<std::string>();
    if (auto size = stored->find("size"); size != stored->end() && size->is_number_integer()) ref.size = size->get<int64_t>();
    out.stored = std::move(ref);
    return out;
  }
  if (!j.contains("parameters") && !j.contains("result") && !j.contains("error") && !j.contains("artifacts")) {
    return std::nullopt;
  }
  if (j.contains("note") && j["note"].is_string()) out.note = j["note"];
  if (j.contains("error") && j["error"].is_string()) out.error = j["error"];
  auto text = [](const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); };
  if (j.contains("parameters")) {
    const json& p = j["parameters"];
    if (p.is_object()) {
      for (auto it = p.begin(); it != p.end(); ++it) out.parameters[it.key()] = text(it.value());
    } else if (p.is_array()) {
      for (const json& e : p) {
        if (e.is_object() && e.contains("name") && e["name"].is_string() && e.contains("value")) {
          out.parameters[e["name"].get<std::string>()] = text(e["value"]);
        }
      }
    }
  }
  if (j.contains("result") && !j["result"].is_null()) out.result = text(j["result"]);
  if (j.contains("artifacts") && j["artifacts"].is_object()) {
    for (auto it = j["artifacts"].begin(); it != j["artifacts"].end(); ++it) {
      if (auto ref = scheduler::ArtifactRef::FromJson(it.value().dump())) out.artifacts[it.key()] = std::move(*ref);
    }
  }
  return out;
}

}  // namespace kiln::executor
