#include "dag/parse.h"

#include "dag/internal/yaml_tree.h"

#include <fstream>
#include <sstream>
#include <sys/stat.h>

#include "base/strings.h"
#include "dag/internal/k8s_schemas.h"
#include "dag/internal/yaml_reader.h"
#include "dag/quantity.h"

namespace kiln::dag {

using internal::CheckedJson;
using internal::ContainerFlavor;
using internal::ContainerSchema;
using internal::JsonKind;
using internal::JsonSchema;
using internal::LocOf;
using internal::MapReader;
using internal::ParseContext;

std::string_view KindName(ManifestKind kind) {
  switch (kind) {
    case ManifestKind::kWorkflow: return "Workflow";
    case ManifestKind::kWorkflowTemplate: return "WorkflowTemplate";
    case ManifestKind::kClusterWorkflowTemplate: return "ClusterWorkflowTemplate";
    case ManifestKind::kCronWorkflow: return "CronWorkflow";
    case ManifestKind::kWorkflowEventBinding: return "WorkflowEventBinding";
  }
  return "?";
}

std::string_view TemplateTypeName(TemplateType type) {
  switch (type) {
    case TemplateType::kUnknown: return "unknown";
    case TemplateType::kContainer: return "container";
    case TemplateType::kScript: return "script";
    case TemplateType::kDag: return "dag";
    case TemplateType::kSteps: return "steps";
    case TemplateType::kSuspend: return "suspend";
    case TemplateType::kResource: return "resource";
    case TemplateType::kContainerSet: return "containerSet";
    case TemplateType::kHttp: return "http";
    case TemplateType::kData: return "data";
    case TemplateType::kPlugin: return "plugin";
  }
  return "?";
}

std::string Manifest::DisplayName() const {
  std::string name = metadata.name.empty() ? metadata.generate_name : metadata.name;
  return std::string(KindName(kind)) + " " + (name.empty() ? "(unnamed)" : name);
}

namespace {

std::string Index(const std::string& path, size_t i) { return path + "[" + std::to_string(i) + "]"; }

// Calls fn(item, path) for each element of a list field; reports a non-list.
template <typename Fn>
void ForEachItem(MapReader& r, std::string_view key, Fn fn) {
  std::optional<yaml::Node> list = r.List(key);
  if (!list) return;
  std::string base = r.FieldPath(key);
  size_t i = 0;
  for (const yaml::Node& item : *list) {
    fn(item, Index(base, i));
    ++i;
  }
}

class Parser {
 public:
  Parser(const ParseContext& ctx) : ctx_(ctx) {}

  bool ExpectMap(const yaml::Node& n, const std::string& path) {
    if (n.IsMap()) return true;
    ctx_.Error(n, path, "expected a map, got " + std::string(internal::DescribeNode(n)));
    return false;
  }

  void ParseMetadata(const yaml::Node& n, const std::string& path, Metadata* m) {
    m->loc = LocOf(n);
    if (!ExpectMap(n, path)) return;
    MapReader r(ctx_, n, path);
    r.String("name", &m->name, &m->name_loc);
    r.String("generateName", &m->generate_name);
    r.String("namespace", &m->namespace_);
    r.StringMap("labels", &m->labels);
    r.StringMap("annotations", &m->annotations);
    for (std::string_view k : {"uid", "resourceVersion", "creationTimestamp", "generation",
                               "finalizers", "ownerReferences", "managedFields", "selfLink",
                               "deletionTimestamp", "deletionGracePeriodSeconds"}) {
      r.Ignore(k);
    }
    r.Finish();
  }

  void ParseValueFrom(const yaml::Node& n, const std::string& path, ValueFrom* v) {
    v->loc = LocOf(n);
    if (!ExpectMap(n, path)) return;
    MapReader r(ctx_, n, path);
    r.String("path", &v->path);
    r.String("expression", &v->expression);
    r.String("jqFilter", &v->jq_filter);
    r.String("jsonPath", &v->json_path);
    r.String("parameter", &v->parameter);
    r.String("event", &v->event);
    yaml::Node supplied = r.Get("supplied");
    if (supplied.IsDefined()) {
      if (!supplied.IsMap() && !supplied.IsNull()) {
        ctx_.Error(supplied, r.FieldPath("supplied"), "expected a map ({}), got " +
                                                          std::string(internal::DescribeNode(supplied)));
      }
      v->supplied = true;
    }
    r.AnyString("default", &v->default_value);
    r.Json("configMapKeyRef", &v->config_map_key_ref, JsonKind::kObject, &internal::KeySelectorSchema());
    r.Finish();
  }

  void ParseParameter(const yaml::Node& n, const std::string& path, Parameter* p) {
    p->loc = LocOf(n);
    if (!ExpectMap(n, path)) return;
    MapReader r(ctx_, n, path);
    if (!r.String("name", &p->name)) {
      if (!r.Has("name")) ctx_.Error(n, path + ".name", "missing required field: every parameter needs a name");
    }
    r.AnyString("value", &p->value, &p->value_loc);
    r.AnyString("default", &p->default_value);
    yaml::Node e = r.Get("enum");
    if (e.IsDefined() && !e.IsNull()) {
      if (!e.IsSequence()) {
        ctx_.Error(e, r.FieldPath("enum"), "expected a list, got " + std::string(internal::DescribeNode(e)));
      } else {
        size_t i = 0;
        for (const yaml::Node& item : e) {
          if (!item.IsScalar()) {
            ctx_.Error(item, Index(r.FieldPath("enum"), i), "expected a string, got " +
                                                                std::string(internal::DescribeNode(item)));
          } else {
            p->enum_values.push_back(std::string(item.Scalar()));
          }
          ++i;
        }
      }
    }
    r.String("globalName", &p->global_name);
    r.String("description", &p->description);
    if (auto vf = r.Map("valueFrom")) {
      p->value_from.emplace();
      ParseValueFrom(*vf, r.FieldPath("valueFrom"), &*p->value_from);
    }
    r.Finish();
  }

  void ParseArtifact(const yaml::Node& n, const std::string& path, Artifact* a) {
    static constexpr std::string_view kStorageKinds[] = {
        "s3", "gcs", "http", "git", "raw", "artifactory", "hdfs", "oss", "azure", "plugin"};
    a->loc = LocOf(n);
    if (!ExpectMap(n, path)) return;
    MapReader r(ctx_, n, path);
    if (!r.String("name", &a->name) && !r.Has("name")) {
      ctx_.Error(n, path + ".name", "missing required field: every artifact needs a name");
    }
    r.String("path", &a->path);
    r.String("from", &a->from);
    r.String("fromExpression", &a->from_expression);
    r.String("globalName", &a->global_name);
    r.String("subPath", &a->sub_path);
    r.Bool("optional", &a->optional);
    r.Bool("deleted", &a->deleted);
    r.Int("mode", &a->mode);
    r.Json("archive", &a->archive, JsonKind::kObject, &kArchiveSchema);
    r.Json("artifactGC", &a->artifact_gc, JsonKind::kObject);
    r.Json("archiveLogs", &a->archive, JsonKind::kBool);
    r.Ignore("recurseMode");
    for (std::string_view kind : kStorageKinds) {
      yaml::Node s = r.Get(kind);
      if (!s.IsDefined()) continue;
      if (!a->storage_kind.empty()) {
        ctx_.Error(s, r.FieldPath(kind), "artifact has two locations (" + a->storage_kind + " and " +
                                             std::string(kind) + "); give one");
        continue;
      }
      a->storage_kind = std::string(kind);
      a->storage = CheckedJson(ctx_, s, r.FieldPath(kind), JsonKind::kObject, nullptr);
    }
    r.Finish();
  }

  void ParseParamsAndArtifacts(MapReader& r, std::vector<Parameter>* params,
                               std::vector<Artifact>* artifacts) {
    ForEachItem(r, "parameters", [&](const yaml::Node& item, const std::string& p) {
      params->emplace_back();
      ParseParameter(item, p, &params->back());
    });
    ForEachItem(r, "artifacts", [&](const yaml::Node& item, const std::string& p) {
      artifacts->emplace_back();
      ParseArtifact(item, p, &artifacts->back());
    });
  }

  void ParseArguments(const yaml::Node& n, const std::string& path, Arguments* a) {
    a->loc = LocOf(n);
    if (!ExpectMap(n, path)) return;
    MapReader r(ctx_, n, path);
    ParseParamsAndArtifacts(r, &a->parameters, &a->artifacts);
    r.Finish();
  }

  void ParseInputs(const yaml::Node& n, const std::string& path, Inputs* in) {
    if (!ExpectMap(n, path)) return;
    MapReader r(ctx_, n, path);
    ParseParamsAndArtifacts(r, &in->parameters, &in->artifacts);
    r.Finish();
  }

  void ParseOutputs(const yaml::Node& n, const std::string& path, Outputs* out) {
    if (!ExpectMap(n, path)) return;
    MapReader r(ctx_, n, path);
    ParseParamsAndArtifacts(r, &out->parameters, &out->artifacts);
    r.AnyString("result", &out->result);
    r.AnyString("exitCode", &out->exit_code);
    r.Finish();
  }

  void ParseRetryStrategy(const yaml::Node& n, const std::string& path, RetryStrategy* rs) {
    rs->loc = LocOf(n);
    if (!ExpectMap(n, path)) return;
    MapReader r(ctx_, n, path);
    yaml::Node limit = r.Get("limit");
    if (limit.IsDefined() && !limit.IsNull()) {
      rs->limit_loc = LocOf(limit);
      auto t = limit.IsScalar() ? internal::ResolveScalar(limit) : internal::ScalarType::kNull;
      if (t != internal::ScalarType::kInt && t != internal::ScalarType::kString) {
        ctx_.Error(limit, r.FieldPath("limit"), "expected an integer or a string, got " +
                                                    std::string(internal::DescribeNode(limit)));
      } else {
        rs->limit = std::string(limit.Scalar());
      }
    }
    std::string policy;
    Location policy_loc;
    if (r.String("retryPolicy", &policy, &policy_loc)) {
      if (policy == "Always") rs->retry_policy = RetryPolicy::kAlways;
      else if (policy == "OnFailure") rs->retry_policy = RetryPolicy::kOnFailure;
      else if (policy == "OnError") rs->retry_policy = RetryPolicy::kOnError;
      else if (policy == "OnTransientError") rs->retry_policy = RetryPolicy::kOnTransientError;
      else {
        ctx_.Error(policy_loc, r.FieldPath("retryPolicy"),
                   "unknown retryPolicy " + Quote(policy) +
                       ": use Always, OnFailure, OnError or OnTransientError" +
                       DidYouMean(policy, {"Always", "OnFailure", "OnError", "OnTransientError"}));
      }
    }
    if (auto b = r.Map("backoff")) {
      rs->backoff.emplace();
      rs->backoff->loc = LocOf(*b);
      MapReader br(ctx_, *b, r.FieldPath("backoff"));
      br.AnyString("duration", &rs->backoff->duration);
      br.AnyString("factor", &rs->backoff->factor);
      br.AnyString("maxDuration", &rs->backoff->max_duration);
      br.AnyString("cap", &rs->backoff->cap);
      br.Finish();
    }
    r.String("expression", &rs->expression, &rs->expression_loc);
    r.Json("affinity", &rs->affinity, JsonKind::kObject);
    r.Finish();
  }

  void ParseTemplateRef(const yaml::Node& n, const std::string& path, TemplateRef* ref) {
    ref->loc = LocOf(n);
    if (!ExpectMap(n, path)) return;
    MapReader r(ctx_, n, path);
    r.String("name", &ref->name);
    r.String("template", &ref->template_name);
    r.Bool("clusterScope", &ref->cluster_scope);
    r.Ignore("runtimeResolution");
    r.Finish();
  }

  void ParseHook(const yaml::Node& key, const yaml::Node& n, const std::string& path,
                 LifecycleHook* h) {
    h->name = internal::ScalarText(key);
    h->loc = LocOf(n);
    if (!ExpectMap(n, path)) return;
    MapReader r(ctx_, n, path);
    r.String("template", &h->template_name);
    if (auto tr = r.Map("templateRef")) {
      h->template_ref.emplace();
      ParseTemplateRef(*tr, r.FieldPath("templateRef"), &*h->template_ref);
    }
    if (auto a = r.Map("arguments")) ParseArguments(*a, r.FieldPath("arguments"), &h->arguments);
    r.String("expression", &h->expression, &h->expression_loc);
    r.Finish();
  }

  void ParseHooks(MapReader& r, std::map<std::string, LifecycleHook>* hooks) {
    if (auto m = r.Map("hooks")) {
      for (auto it = m->begin(); it != m->end(); ++it) {
        std::string name = internal::ScalarText(it->first);
        LifecycleHook h;
        ParseHook(it->first, it->second, r.FieldPath("hooks") + "." + name, &h);
        (*hooks)[name] = std::move(h);
      }
    }
  }

  void ParseInvocation(const yaml::Node& n, const std::string& path, bool is_task, Invocation* inv) {
    inv->loc = LocOf(n);
    if (!ExpectMap(n, path)) return;
    MapReader r(ctx_, n, path);
    if (!r.String("name", &inv->name, &inv->name_loc) && !r.Has("name")) {
      ctx_.Error(n, path + ".name", std::string("missing required field: every ") +
                                        (is_task ? "task" : "step") + " needs a name");
    }
    r.String("template", &inv->template_name, &inv->template_loc);
    if (auto tr = r.Map("templateRef")) {
      inv->template_ref.emplace();
      ParseTemplateRef(*tr, r.FieldPath("templateRef"), &*inv->template_ref);
      inv->template_loc = inv->template_ref->loc;
    }
    if (auto in = r.Map("inline")) {
      auto t = std::make_shared<Template>();
      ParseTemplate(*in, r.FieldPath("inline"), t.get(), /*is_inline=*/true);
      inv->inline_template = std::move(t);
      inv->template_loc = LocOf(*in);
    }
    if (auto a = r.Map("arguments")) ParseArguments(*a, r.FieldPath("arguments"), &inv->arguments);
    {
      std::optional<std::string> when;
      if (r.AnyString("when", &when, &inv->when_loc) && when) inv->when = *when;
    }
    yaml::Node items = r.Get("withItems");
    if (items.IsDefined() && !items.IsNull()) {
      inv->with_items_loc = LocOf(items);
      if (!items.IsSequence()) {
        ctx_.Error(items, r.FieldPath("withItems"),
                   "expected a list, got " + std::string(internal::DescribeNode(items)));
      } else {
        inv->with_items = internal::ToJson(items);
      }
    }
    r.String("withParam", &inv->with_param, &inv->with_param_loc);
    if (auto s = r.Map("withSequence")) {
      inv->with_sequence.emplace();
      inv->with_sequence->loc = LocOf(*s);
      MapReader sr(ctx_, *s, r.FieldPath("withSequence"));
      sr.AnyString("count", &inv->with_sequence->count);
      sr.AnyString("start", &inv->with_sequence->start);
      sr.AnyString("end", &inv->with_sequence->end);
      sr.String("format", &inv->with_sequence->format);
      sr.Finish();
    }
    if (auto c = r.Map("continueOn")) {
      inv->continue_on.emplace();
      MapReader cr(ctx_, *c, r.FieldPath("continueOn"));
      cr.Bool("error", &inv->continue_on->error);
      cr.Bool("failed", &inv->continue_on->failed);
      cr.Finish();
    }
    r.String("onExit", &inv->on_exit);
    {
      std::map<std::string, LifecycleHook> hooks;
      ParseHooks(r, &hooks);
      for (auto& [k, h] : hooks) inv->hooks.push_back(std::move(h));
    }
    if (is_task) {
      if (r.String("depends", &inv->depends, &inv->depends_loc)) inv->has_depends = true;
      r.StringList("dependencies", &inv->dependencies, &inv->dependencies_loc);
    }
    r.Finish();
  }

  void SetType(Template* t, TemplateType type, const yaml::Node& at, const std::string& path) {
    (void)at;
    (void)path;
    if (t->type == TemplateType::kUnknown) {
      t->type = type;
    } else {
      t->extra_types.push_back(type);
    }
  }

  void ParseTemplate(const yaml::Node& n, const std::string& path, Template* t, bool is_inline) {
    t->loc = LocOf(n);
    if (!ExpectMap(n, path)) return;
    MapReader r(ctx_, n, path);
    r.String("name", &t->name, &t->name_loc);
    (void)is_inline;
    if (auto in = r.Map("inputs")) ParseInputs(*in, r.FieldPath("inputs"), &t->inputs);
    if (auto out = r.Map("outputs")) ParseOutputs(*out, r.FieldPath("outputs"), &t->outputs);

    // The template's type: exactly one of these.
    if (yaml::Node c = r.Get("container"); c.IsDefined() && !c.IsNull()) {
      SetType(t, TemplateType::kContainer, c, r.FieldPath("container"));
      t->container = CheckedJson(ctx_, c, r.FieldPath("container"), JsonKind::kObject,
                                 &ContainerSchema(ContainerFlavor::kContainer));
    }
    if (yaml::Node s = r.Get("script"); s.IsDefined() && !s.IsNull()) {
      SetType(t, TemplateType::kScript, s, r.FieldPath("script"));
      t->script.container = CheckedJson(ctx_, s, r.FieldPath("script"), JsonKind::kObject,
                                        &ContainerSchema(ContainerFlavor::kScript));
      if (t->script.container.contains("source") && t->script.container["source"].is_string()) {
        t->script.source = t->script.container["source"].get<std::string>();
        t->script.container.erase("source");
      }
    }
    if (auto d = r.Map("dag")) {
      SetType(t, TemplateType::kDag, *d, r.FieldPath("dag"));
      t->dag.loc = LocOf(*d);
      MapReader dr(ctx_, *d, r.FieldPath("dag"));
      dr.String("target", &t->dag.target);
      bool ff = false;
      if (dr.Bool("failFast", &ff)) t->dag.fail_fast = ff;
      std::optional<yaml::Node> tasks = dr.List("tasks");
      if (tasks) {
        t->dag.tasks.reserve(tasks->size());
        std::string base = dr.FieldPath("tasks");
        size_t i = 0;
        for (const yaml::Node& item : *tasks) {
          t->dag.tasks.emplace_back();
          ParseInvocation(item, Index(base, i), /*is_task=*/true, &t->dag.tasks.back());
          ++i;
        }
      } else if (!dr.Has("tasks")) {
        ctx_.Error(*d, dr.FieldPath("tasks"), "missing required field: a dag template needs tasks");
      }
      dr.Finish();
    }
    if (yaml::Node s = r.Get("steps"); s.IsDefined() && !s.IsNull()) {
      SetType(t, TemplateType::kSteps, s, r.FieldPath("steps"));
      t->steps_loc = LocOf(s);
      if (!s.IsSequence()) {
        ctx_.Error(s, r.FieldPath("steps"), "expected a list of step groups (a list of lists), got " +
                                                std::string(internal::DescribeNode(s)));
      } else {
        size_t g = 0;
        for (const yaml::Node& group : s) {
          std::string gpath = Index(r.FieldPath("steps"), g);
          t->steps.emplace_back();
          if (group.IsMap()) {
            // Argo accepts a bare step where a group belongs? No: it requires a list. Say so.
            ctx_.Error(group, gpath, "expected a list of parallel steps, got a map (write \"- - name: ...\")");
          } else if (!group.IsSequence()) {
            ctx_.Error(group, gpath, "expected a list of parallel steps, got " +
                                         std::string(internal::DescribeNode(group)));
          } else {
            size_t i = 0;
            for (const yaml::Node& step : group) {
              t->steps.back().emplace_back();
              ParseInvocation(step, Index(gpath, i), /*is_task=*/false, &t->steps.back().back());
              ++i;
            }
          }
          ++g;
        }
      }
    }
    if (yaml::Node s = r.Get("suspend"); s.IsDefined()) {
      SetType(t, TemplateType::kSuspend, s, r.FieldPath("suspend"));
      if (s.IsMap()) {
        MapReader sr(ctx_, s, r.FieldPath("suspend"));
        sr.AnyString("duration", &t->suspend.duration);
        sr.Finish();
      } else if (!s.IsNull()) {
        ctx_.Error(s, r.FieldPath("suspend"), "expected a map ({} or {duration: ...}), got " +
                                                  std::string(internal::DescribeNode(s)));
      }
    }
    if (auto res = r.Map("resource")) {
      SetType(t, TemplateType::kResource, *res, r.FieldPath("resource"));
      MapReader rr(ctx_, *res, r.FieldPath("resource"));
      rr.String("action", &t->resource.action, &t->resource.action_loc);
      rr.String("manifest", &t->resource.manifest);
      rr.Json("manifestFrom", &t->resource.manifest_from, JsonKind::kObject);
      rr.String("successCondition", &t->resource.success_condition);
      rr.String("failureCondition", &t->resource.failure_condition);
      rr.String("mergeStrategy", &t->resource.merge_strategy);
      rr.Bool("setOwnerReference", &t->resource.set_owner_reference);
      rr.StringList("flags", &t->resource.flags);
      rr.Finish();
    }
    if (auto cs = r.Map("containerSet")) {
      SetType(t, TemplateType::kContainerSet, *cs, r.FieldPath("containerSet"));
      static const JsonSchema kMember = ContainerSchema(ContainerFlavor::kContainerSetMember);
      static const JsonSchema kVolumeMount{"VolumeMount", {
          {"name", JsonKind::kString}, {"mountPath", JsonKind::kString},
          {"readOnly", JsonKind::kBool}, {"subPath", JsonKind::kString},
          {"subPathExpr", JsonKind::kString}, {"mountPropagation", JsonKind::kString}}};
      static const JsonSchema kSet{"ContainerSetTemplate", {
          {"containers", JsonKind::kArray, &kMember, JsonKind::kObject},
          {"volumeMounts", JsonKind::kArray, &kVolumeMount, JsonKind::kObject},
          {"retryStrategy", JsonKind::kObject, nullptr}}};
      t->container_set = CheckedJson(ctx_, *cs, r.FieldPath("containerSet"), JsonKind::kObject, &kSet);
    }
    if (auto h = r.Map("http")) {
      SetType(t, TemplateType::kHttp, *h, r.FieldPath("http"));
      MapReader hr(ctx_, *h, r.FieldPath("http"));
      hr.String("method", &t->http.method);
      hr.String("url", &t->http.url);
      hr.Json("headers", &t->http.headers, JsonKind::kArray, nullptr, JsonKind::kObject);
      hr.String("body", &t->http.body);
      hr.Json("bodyFrom", &t->http.body_from, JsonKind::kObject);
      hr.Int("timeoutSeconds", &t->http.timeout_seconds);
      hr.String("successCondition", &t->http.success_condition);
      hr.Bool("insecureSkipVerify", &t->http.insecure_skip_verify);
      hr.Finish();
    }
    if (auto d = r.Map("data")) {
      SetType(t, TemplateType::kData, *d, r.FieldPath("data"));
      static const JsonSchema kData{"Data", {
          {"source", JsonKind::kObject, nullptr},
          {"transformation", JsonKind::kArray, nullptr, JsonKind::kObject}}};
      t->data = CheckedJson(ctx_, *d, r.FieldPath("data"), JsonKind::kObject, &kData);
    }
    if (auto p = r.Map("plugin")) {
      SetType(t, TemplateType::kPlugin, *p, r.FieldPath("plugin"));
      t->plugin = internal::ToJson(*p);
    }

    r.StringMap("nodeSelector", &t->node_selector);
    r.Json("affinity", &t->affinity, JsonKind::kObject, &internal::AffinitySchema());
    r.Json("tolerations", &t->tolerations, JsonKind::kArray, &internal::TolerationSchema(), JsonKind::kObject);
    r.Json("volumes", &t->volumes, JsonKind::kArray, &internal::VolumeSchema(), JsonKind::kObject);
    r.Json("initContainers", &t->init_containers, JsonKind::kArray,
           &ContainerSchema(ContainerFlavor::kUserContainer), JsonKind::kObject);
    r.Json("sidecars", &t->sidecars, JsonKind::kArray,
           &ContainerSchema(ContainerFlavor::kUserContainer), JsonKind::kObject);
    r.Json("securityContext", &t->security_context, JsonKind::kObject);
    static const JsonSchema kPodMeta{"Metadata", {
        {"labels", JsonKind::kStringMap}, {"annotations", JsonKind::kStringMap}}};
    r.Json("metadata", &t->metadata, JsonKind::kObject, &kPodMeta);
    r.Json("hostAliases", &t->host_aliases, JsonKind::kArray, &internal::HostAliasSchema(), JsonKind::kObject);
    r.Json("archiveLocation", &t->archive_location, JsonKind::kObject);
    r.Json("memoize", &t->memoize, JsonKind::kObject);
    r.Json("metrics", &t->metrics, JsonKind::kObject);
    r.Json("synchronization", &t->synchronization, JsonKind::kObject, &kSynchronizationSchema);
    r.Json("executor", &t->executor, JsonKind::kObject);
    if (auto rs = r.Map("retryStrategy")) {
      t->retry_strategy.emplace();
      ParseRetryStrategy(*rs, r.FieldPath("retryStrategy"), &*t->retry_strategy);
    }
    r.AnyString("timeout", &t->timeout, &t->timeout_loc);
    ReadIntOrString(r, "activeDeadlineSeconds", &t->active_deadline_seconds);
    ReadIntOrString(r, "parallelism", &t->parallelism, &t->parallelism_loc);
    bool ff = false;
    if (r.Bool("failFast", &ff)) t->fail_fast = ff;
    r.Bool("daemon", &t->daemon);
    r.String("serviceAccountName", &t->service_account_name);
    bool am = false;
    if (r.Bool("automountServiceAccountToken", &am)) t->automount_service_account_token = am;
    r.String("priorityClassName", &t->priority_class_name);
    r.String("schedulerName", &t->scheduler_name);
    r.String("podSpecPatch", &t->pod_spec_patch);
    r.Int("priority", &t->priority);
    r.Json("podResources", &t->pod_resources, JsonKind::kObject, &internal::ResourceRequirementsSchema());
    r.Json("resourceClaims", &t->resource_claims, JsonKind::kArray, &internal::PodResourceClaimSchema(),
           JsonKind::kObject);
    r.Ignore("annotations");  // not an Argo template field; reported below if present
    r.Finish();
  }

  void ReadIntOrString(MapReader& r, std::string_view key, std::optional<std::string>* out,
                       Location* loc = nullptr) {
    yaml::Node n = r.Get(key);
    if (!n.IsDefined() || n.IsNull()) return;
    if (loc) *loc = LocOf(n);
    auto t = n.IsScalar() ? internal::ResolveScalar(n) : internal::ScalarType::kNull;
    // A string is allowed only when it is templated ("{{inputs.parameters.n}}") or numeric ("4").
    bool numeric_string = t == internal::ScalarType::kString && !n.Scalar().empty() &&
                          n.Scalar().find_first_not_of("0123456789") == std::string::npos;
    if (t != internal::ScalarType::kInt &&
        !(t == internal::ScalarType::kString && (HasTemplateTag(n.Scalar()) || numeric_string))) {
      ctx_.Error(n, r.FieldPath(key), "expected an integer, got " + std::string(internal::DescribeNode(n)));
      return;
    }
    *out = std::string(n.Scalar());
  }

  void ParseWorkflowSpec(const yaml::Node& n, const std::string& path, WorkflowSpec* s) {
    s->loc = LocOf(n);
    if (!ExpectMap(n, path)) return;
    MapReader r(ctx_, n, path);
    r.String("entrypoint", &s->entrypoint, &s->entrypoint_loc);
    if (auto a = r.Map("arguments")) ParseArguments(*a, r.FieldPath("arguments"), &s->arguments);
    if (auto list = r.List("templates")) {
      s->templates.reserve(list->size());
      size_t i = 0;
      for (const yaml::Node& item : *list) {
        s->templates.emplace_back();
        ParseTemplate(item, Index(r.FieldPath("templates"), i), &s->templates.back(), false);
        ++i;
      }
    }
    r.String("onExit", &s->on_exit, &s->on_exit_loc);
    ParseHooks(r, &s->hooks);
    ReadIntOrString(r, "parallelism", &s->parallelism);
    ReadIntOrString(r, "activeDeadlineSeconds", &s->active_deadline_seconds);
    r.String("serviceAccountName", &s->service_account_name);
    bool b = false;
    if (r.Bool("automountServiceAccountToken", &b)) s->automount_service_account_token = b;
    r.StringMap("nodeSelector", &s->node_selector);
    r.Json("affinity", &s->affinity, JsonKind::kObject, &internal::AffinitySchema());
    r.Json("tolerations", &s->tolerations, JsonKind::kArray, &internal::TolerationSchema(), JsonKind::kObject);
    r.Json("volumes", &s->volumes, JsonKind::kArray, &internal::VolumeSchema(), JsonKind::kObject);
    r.Json("volumeClaimTemplates", &s->volume_claim_templates, JsonKind::kArray,
           &internal::PersistentVolumeClaimSchema(), JsonKind::kObject);
    r.Json("volumeClaimGC", &s->volume_claim_gc, JsonKind::kObject);
    static const JsonSchema kPodGC{"PodGC", {
        {"strategy", JsonKind::kString}, {"labelSelector", JsonKind::kObject, nullptr},
        {"deleteDelayDuration", JsonKind::kString}}};
    r.Json("podGC", &s->pod_gc, JsonKind::kObject, &kPodGC);
    static const JsonSchema kTtl{"TTLStrategy", {
        {"secondsAfterCompletion", JsonKind::kInt}, {"secondsAfterSuccess", JsonKind::kInt},
        {"secondsAfterFailure", JsonKind::kInt}}};
    r.Json("ttlStrategy", &s->ttl_strategy, JsonKind::kObject, &kTtl);
    r.Int("priority", &s->priority);
    if (auto td = r.Map("templateDefaults")) {
      s->template_defaults.emplace();
      ParseTemplate(*td, r.FieldPath("templateDefaults"), &*s->template_defaults, false);
    }
    if (auto ref = r.Map("workflowTemplateRef")) {
      s->workflow_template_ref.emplace();
      s->workflow_template_ref->loc = LocOf(*ref);
      MapReader rr(ctx_, *ref, r.FieldPath("workflowTemplateRef"));
      rr.String("name", &s->workflow_template_ref->name);
      rr.Bool("clusterScope", &s->workflow_template_ref->cluster_scope);
      rr.Finish();
    }
    r.Json("synchronization", &s->synchronization, JsonKind::kObject, &kSynchronizationSchema);
    r.Json("metrics", &s->metrics, JsonKind::kObject);
    static const JsonSchema kPodMeta{"Metadata", {
        {"labels", JsonKind::kStringMap}, {"annotations", JsonKind::kStringMap}}};
    r.Json("podMetadata", &s->pod_metadata, JsonKind::kObject, &kPodMeta);
    r.Json("workflowMetadata", &s->workflow_metadata, JsonKind::kObject);
    r.Json("securityContext", &s->security_context, JsonKind::kObject);
    r.Json("imagePullSecrets", &s->image_pull_secrets, JsonKind::kArray,
           &internal::LocalObjectReferenceSchema(), JsonKind::kObject);
    r.Json("dnsConfig", &s->dns_config, JsonKind::kObject);
    r.String("dnsPolicy", &s->dns_policy);
    if (r.Bool("hostNetwork", &b)) s->host_network = b;
    r.String("podPriorityClassName", &s->pod_priority_class_name);
    r.Ignore("podPriority");
    r.String("schedulerName", &s->scheduler_name);
    r.String("podSpecPatch", &s->pod_spec_patch);
    r.String("shutdown", &s->shutdown);
    if (r.Bool("suspend", &b)) s->suspend = b;
    if (r.Bool("archiveLogs", &b)) s->archive_logs = b;
    r.Json("artifactRepositoryRef", &s->artifact_repository_ref, JsonKind::kObject);
    r.Json("artifactGC", &s->artifact_gc, JsonKind::kObject);
    r.Json("podDisruptionBudget", &s->pod_disruption_budget, JsonKind::kObject);
    r.Json("hostAliases", &s->host_aliases, JsonKind::kArray, &internal::HostAliasSchema(), JsonKind::kObject);
    r.Json("executor", &s->executor, JsonKind::kObject);
    r.Json("podResources", &s->pod_resources, JsonKind::kObject, &internal::ResourceRequirementsSchema());
    r.Json("resourceClaims", &s->resource_claims, JsonKind::kArray, &internal::PodResourceClaimSchema(),
           JsonKind::kObject);
    if (auto rs = r.Map("retryStrategy")) {
      s->retry_strategy.emplace();
      ParseRetryStrategy(*rs, r.FieldPath("retryStrategy"), &*s->retry_strategy);
    }
    r.Finish();
    if (s->template_defaults) {
      for (Template& t : s->templates) ApplyTemplateDefaults(*s->template_defaults, &t);
    }
  }

  // spec.templateDefaults, as Argo applies them: every field a template leaves unset comes from
  // the defaults; objects merge key by key (the template's keys win); lists are replaced whole.
  static void MergeJson(const Json& defaults, Json* into) {
    if (defaults.is_null()) return;
    if (into->is_null()) {
      *into = defaults;
      return;
    }
    if (!defaults.is_object() || !into->is_object()) return;
    for (auto it = defaults.begin(); it != defaults.end(); ++it) {
      auto mine = into->find(it.key());
      if (mine == into->end()) {
        (*into)[it.key()] = it.value();
      } else {
        MergeJson(it.value(), &*mine);
      }
    }
  }

  static void ApplyTemplateDefaults(const Template& d, Template* t) {
    if (!t->retry_strategy && d.retry_strategy) t->retry_strategy = d.retry_strategy;
    if (!t->timeout && d.timeout) t->timeout = d.timeout;
    if (!t->active_deadline_seconds && d.active_deadline_seconds) t->active_deadline_seconds = d.active_deadline_seconds;
    if (!t->parallelism && d.parallelism) t->parallelism = d.parallelism;
    if (!t->fail_fast && d.fail_fast) t->fail_fast = d.fail_fast;
    if (!t->automount_service_account_token) t->automount_service_account_token = d.automount_service_account_token;
    if (!t->priority) t->priority = d.priority;
    if (t->service_account_name.empty()) t->service_account_name = d.service_account_name;
    if (t->priority_class_name.empty()) t->priority_class_name = d.priority_class_name;
    if (t->scheduler_name.empty()) t->scheduler_name = d.scheduler_name;
    if (t->pod_spec_patch.empty()) t->pod_spec_patch = d.pod_spec_patch;
    for (const auto& [k, v] : d.node_selector) t->node_selector.emplace(k, v);
    for (Json Template::*field : {&Template::affinity, &Template::security_context, &Template::metadata,
                                  &Template::memoize, &Template::metrics, &Template::synchronization,
                                  &Template::executor, &Template::archive_location, &Template::pod_resources}) {
      MergeJson(d.*field, &(t->*field));
    }
    for (Json Template::*field : {&Template::tolerations, &Template::volumes, &Template::init_containers,
                                  &Template::sidecars, &Template::host_aliases}) {
      if ((t->*field).is_null() || (t->*field).empty()) t->*field = d.*field;
    }
    // Container defaults apply to what runs a container: container and script templates.
    if (d.container.is_object()) {
      if (t->type == TemplateType::kContainer) MergeJson(d.container, &t->container);
      if (t->type == TemplateType::kScript) MergeJson(d.container, &t->script.container);
    }
  }

  void ParseCron(MapReader& r, CronSpec* c) {
    std::string single;
    Location loc;
    if (r.String("schedule", &single, &loc)) {
      c->schedules.push_back(single);
      c->schedule_locs.push_back(loc);
    }
    if (auto list = r.List("schedules")) {
      size_t i = 0;
      for (const yaml::Node& item : *list) {
        if (!item.IsScalar() || internal::ResolveScalar(item) != internal::ScalarType::kString) {
          ctx_.Error(item, Index(r.FieldPath("schedules"), i),
                     "expected a string, got " + std::string(internal::DescribeNode(item)));
        } else {
          c->schedules.push_back(std::string(item.Scalar()));
          c->schedule_locs.push_back(LocOf(item));
        }
        ++i;
      }
    }
    r.String("timezone", &c->timezone, &c->timezone_loc);
    r.String("concurrencyPolicy", &c->concurrency_policy, &c->concurrency_policy_loc);
    r.Int("startingDeadlineSeconds", &c->starting_deadline_seconds);
    r.Bool("suspend", &c->suspend);
    r.Int("successfulJobsHistoryLimit", &c->successful_jobs_history_limit);
    r.Int("failedJobsHistoryLimit", &c->failed_jobs_history_limit);
    r.String("when", &c->when, &c->when_loc);
    r.Json("stopStrategy", &c->stop_strategy, JsonKind::kObject);
    r.Json("workflowMetadata", &c->workflow_metadata, JsonKind::kObject, &internal::ObjectMetaSchema());
  }

  static const JsonSchema kArchiveSchema;
  static const JsonSchema kSynchronizationSchema;

 private:
  const ParseContext& ctx_;
};

const JsonSchema Parser::kArchiveSchema{"ArchiveStrategy", {
    {"none", JsonKind::kObject, nullptr}, {"tar", JsonKind::kObject, nullptr},
    {"zip", JsonKind::kObject, nullptr}}};

namespace {
const JsonSchema kConfigMapRef{"ConfigMapKeySelector", {
    {"name", JsonKind::kString}, {"key", JsonKind::kString}, {"optional", JsonKind::kBool}}};
const JsonSchema kSemaphoreRef{"SemaphoreRef", {
    {"configMapKeyRef", JsonKind::kObject, &kConfigMapRef}, {"namespace", JsonKind::kString},
    {"database", JsonKind::kObject, nullptr}}};
const JsonSchema kMutex{"Mutex", {
    {"name", JsonKind::kString}, {"namespace", JsonKind::kString}, {"database", JsonKind::kBool}}};
}  // namespace

// v3's singular `mutex`/`semaphore` and v4's plural `mutexes`/`semaphores`.
const JsonSchema Parser::kSynchronizationSchema{"Synchronization", {
    {"mutex", JsonKind::kObject, &kMutex},
    {"semaphore", JsonKind::kObject, &kSemaphoreRef},
    {"mutexes", JsonKind::kArray, &kMutex, JsonKind::kObject},
    {"semaphores", JsonKind::kArray, &kSemaphoreRef, JsonKind::kObject}}};

std::optional<ManifestKind> KindFromString(std::string_view kind) {
  if (kind == "Workflow") return ManifestKind::kWorkflow;
  if (kind == "WorkflowTemplate") return ManifestKind::kWorkflowTemplate;
  if (kind == "ClusterWorkflowTemplate") return ManifestKind::kClusterWorkflowTemplate;
  if (kind == "CronWorkflow") return ManifestKind::kCronWorkflow;
  if (kind == "WorkflowEventBinding") return ManifestKind::kWorkflowEventBinding;
  return std::nullopt;
}

void ParseDocumentInto(const ParseContext& ctx, const yaml::Node& doc, size_t index, Manifest& m,
                       std::vector<Manifest>* out);

void ParseDocument(const ParseContext& ctx, const yaml::Node& doc, size_t index,
                   std::vector<Manifest>* out) {
  if (doc.IsNull()) return;  // an empty document, e.g. after a trailing "---"
  if (!doc.IsMap()) {
    ctx.Error(doc, "", "expected a Kubernetes object (a map with apiVersion and kind), got " +
                           std::string(internal::DescribeNode(doc)));
    return;
  }
  Manifest m;
  m.file = ctx.file;
  m.document = index;
  m.loc = LocOf(doc);
  ParseContext local = ctx;
  local.value_locations = &m.value_locations;
  ParseDocumentInto(local, doc, index, m, out);
}

void ParseDocumentInto(const ParseContext& ctx, const yaml::Node& doc, size_t index, Manifest& m,
                       std::vector<Manifest>* out) {
  MapReader r(ctx, doc, "");
  std::string kind;
  Location kind_loc;
  r.String("apiVersion", &m.api_version);
  r.String("kind", &kind, &kind_loc);
  if (kind.empty()) {
    ctx.Error(doc, "kind", "missing required field: kind (Workflow, WorkflowTemplate, "
                           "ClusterWorkflowTemplate or CronWorkflow)");
    return;
  }
  std::optional<ManifestKind> mk = KindFromString(kind);
  if (!m.api_version.starts_with("argoproj.io/")) {
    ctx.diags->Note(ctx.file, kind_loc, "",
                    "document " + std::to_string(index + 1) + " is a " +
                        (m.api_version.empty() ? std::string("") : m.api_version + " ") + kind +
                        ", not an Argo workflow; skipped");
    return;
  }
  if (!mk) {
    std::vector<std::string_view> kinds = {"Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate",
                                           "CronWorkflow", "WorkflowEventBinding"};
    ctx.Error(kind_loc, "kind", "unsupported kind " + Quote(kind) +
                                    ": kiln reads Workflow, WorkflowTemplate, ClusterWorkflowTemplate, "
                                    "CronWorkflow and WorkflowEventBinding" + DidYouMean(kind, kinds));
    return;
  }
  if (m.api_version != "argoproj.io/v1alpha1") {
    ctx.Error(doc, "apiVersion", "unsupported apiVersion " + Quote(m.api_version) +
                                     ": use argoproj.io/v1alpha1");
  }
  m.kind = *mk;
  Parser p(ctx);
  yaml::Node meta = r.Get("metadata");
  if (meta.IsDefined()) p.ParseMetadata(meta, "metadata", &m.metadata);
  r.Ignore("status");
  yaml::Node spec = r.Get("spec");
  if (!spec.IsDefined() || spec.IsNull()) {
    ctx.Error(doc, "spec", "missing required field: spec");
  } else if (p.ExpectMap(spec, "spec")) {
    if (m.kind == ManifestKind::kCronWorkflow) {
      m.spec_path = "spec.workflowSpec";
      m.cron.emplace();
      MapReader sr(ctx, spec, "spec");
      p.ParseCron(sr, &*m.cron);
      yaml::Node ws = sr.Get("workflowSpec");
      if (!ws.IsDefined() || ws.IsNull()) {
        ctx.Error(spec, "spec.workflowSpec", "missing required field: a CronWorkflow needs a workflowSpec");
      } else {
        p.ParseWorkflowSpec(ws, "spec.workflowSpec", &m.spec);
      }
      sr.Finish();
    } else if (m.kind == ManifestKind::kWorkflowEventBinding) {
      m.spec_path = "spec";
      m.event.emplace();
      MapReader sr(ctx, spec, "spec");
      if (auto ev = sr.Map("event")) {
        MapReader er(ctx, *ev, "spec.event");
        er.String("selector", &m.event->selector, &m.event->selector_loc);
        er.Finish();
      }
      if (auto sub = sr.Map("submit")) {
        MapReader sb(ctx, *sub, "spec.submit");
        if (auto ref = sb.Map("workflowTemplateRef")) {
          m.event->workflow_template_ref.emplace();
          m.event->workflow_template_ref->loc = LocOf(*ref);
          MapReader rr(ctx, *ref, "spec.submit.workflowTemplateRef");
          rr.String("name", &m.event->workflow_template_ref->name);
          rr.Bool("clusterScope", &m.event->workflow_template_ref->cluster_scope);
          rr.Finish();
        }
        if (auto a = sb.Map("arguments")) p.ParseArguments(*a, "spec.submit.arguments", &m.event->arguments);
        sb.Ignore("metadata");
        sb.Finish();
      }
      sr.Finish();
    } else {
      m.spec_path = "spec";
      p.ParseWorkflowSpec(spec, "spec", &m.spec);
    }
  }
  r.Finish();
  out->push_back(std::move(m));
}

}  // namespace

std::vector<Manifest> ParseManifests(std::string_view file, const std::string& text,
                                     const ParseOptions& options, Diagnostics& diags) {
  std::vector<Manifest> out;
  ParseContext ctx{std::string(file), &diags, options.strict};
  if (text.size() > options.max_file_bytes) {
    diags.Error(file, {}, "", "file is " + std::to_string(text.size()) + " bytes, over the limit of " +
                                  std::to_string(options.max_file_bytes) +
                                  " bytes; split it or raise --max-file-size");
    return out;
  }
  yaml::BuildOptions build;
  build.max_depth = options.max_depth;
  build.max_nodes = options.max_nodes;
  std::unique_ptr<yaml::Tree> tree = yaml::Tree::Parse(file, text, build, diags);
  const std::vector<yaml::Node>& docs = tree->documents();
  for (size_t i = 0; i < docs.size(); ++i) {
    try {
      ParseDocument(ctx, docs[i], i, &out);
    } catch (const std::exception& e) {
      diags.Error(file, LocOf(docs[i]), "", std::string("cannot read document: ") + e.what());
    }
  }
  return out;
}

std::vector<Manifest> LoadManifestFile(const std::string& path, const ParseOptions& options,
                                       Diagnostics& diags) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    diags.Error(path, {}, "", "cannot read file: it does not exist or is not accessible");
    return {};
  }
  if (!S_ISREG(st.st_mode)) {
    diags.Error(path, {}, "", "not a regular file");
    return {};
  }
  if (static_cast<size_t>(st.st_size) > options.max_file_bytes) {
    diags.Error(path, {}, "", "file is " + std::to_string(st.st_size) + " bytes, over the limit of " +
                                  std::to_string(options.max_file_bytes) +
                                  " bytes; split it or raise --max-file-size");
    return {};
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    diags.Error(path, {}, "", "cannot open file for reading");
    return {};
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  return ParseManifests(path, buf.str(), options, diags);
}

Result<nlohmann::json> YamlToJson(std::string_view name, std::string_view text) {
  Diagnostics diags;
  auto tree = yaml::Tree::Parse(name, text, yaml::BuildOptions{}, diags);
  for (const Diagnostic& d : diags.items()) {
    if (d.severity == Severity::kError) return MakeError(Code::kInvalidArgument, d.ToString());
  }
  if (!tree || tree->documents().empty()) return MakeError(Code::kInvalidArgument, std::string(name) + ": empty document");
  return internal::ToJson(tree->documents().front());
}

}  // namespace kiln::dag
