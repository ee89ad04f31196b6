// The typed model of Argo Workflows manifests (argoproj.io/v1alpha1): Workflow, WorkflowTemplate,
// ClusterWorkflowTemplate, CronWorkflow and WorkflowEventBinding. Field names follow Argo's
// docs/fields.md. Kubernetes objects that kiln passes through to pods (containers, volumes,
// affinity, tolerations, ...) are kept as JSON after their types were checked by the parser.
// Every struct keeps the Location of its YAML node so validation can point at it.
// Thread-safety: plain values; immutable once parsed, safe to share between threads.
#ifndef KILN_DAG_SPEC_H_
#define KILN_DAG_SPEC_H_

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "dag/diagnostic.h"

namespace kiln::dag {

using Json = nlohmann::json;

// An optional value stored out of line, for fields most manifests leave empty: the common case
// costs one pointer instead of the whole struct (a 100k-task DAG keeps 100k Invocations).
// Copies are deep. The interface is std::optional's.
template <typename T>
class Boxed {
 public:
  Boxed() = default;
  Boxed(const Boxed& other) : p_(other.p_ ? std::make_unique<T>(*other.p_) : nullptr) {}
  Boxed(Boxed&&) noexcept = default;
  Boxed& operator=(const Boxed& other) {
    if (this != &other) p_ = other.p_ ? std::make_unique<T>(*other.p_) : nullptr;
    return *this;
  }
  Boxed& operator=(Boxed&&) noexcept = default;

  T& emplace() {
    p_ = std::make_unique<T>();
    return *p_;
  }
  bool has_value() const { return p_ != nullptr; }
  explicit operator bool() const { return p_ != nullptr; }
  T* operator->() { return p_.get(); }
  const T* operator->() const { return p_.get(); }
  T& operator*() { return *p_; }
  const T& operator*() const { return *p_; }

 private:
  std::unique_ptr<T> p_;
};

enum class ManifestKind {
  kWorkflow,
  kWorkflowTemplate,
  kClusterWorkflowTemplate,
  kCronWorkflow,
  kWorkflowEventBinding,
};
std::string_view KindName(ManifestKind kind);

struct Metadata {
  std::string name;
  std::string generate_name;
  std::string namespace_;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
  Location loc;
  Location name_loc;
};

// parameters[].valueFrom (inputs, outputs and arguments share the type).
struct ValueFrom {
  std::string path;
  std::string expression;
  std::string jq_filter;
  std::string json_path;
  std::string parameter;
  std::string event;
  bool supplied = false;
  std::optional<std::string> default_value;
  Json config_map_key_ref;  // {name, key, optional}
  Location loc;
};

struct Parameter {
  std::string name;
  std::optional<std::string> value;
  std::optional<std::string> default_value;
  std::vector<std::string> enum_values;
  std::string global_name;
  std::string description;
  Boxed<ValueFrom> value_from;
  Location loc;
  Location value_loc;
};

// Where an artifact lives: "s3", "gcs", "http", "git", "raw", "artifactory", "hdfs", "oss",
// "azure", "plugin"; empty when the artifact names none (it then uses the default repository,
// or comes from `from`).
struct Artifact {
  std::string name;
  std::string path;
  std::string from;
  std::string from_expression;
  std::string global_name;
  std::string sub_path;
  bool optional = false;
  bool deleted = false;
  std::optional<int64_t> mode;
  Json archive;           // {none: {}} | {tar: {compressionLevel}} | {zip: {}}
  std::string storage_kind;
  Json storage;           // the storage kind's own fields
  Json artifact_gc;
  Location loc;
};

struct Arguments {
  std::vector<Parameter> parameters;
  std::vector<Artifact> artifacts;
  Location loc;
};

struct Inputs {
  std::vector<Parameter> parameters;
  std::vector<Artifact> artifacts;
};

struct Outputs {
  std::vector<Parameter> parameters;
  std::vector<Artifact> artifacts;
  std::optional<std::string> result;     // only in status documents
  std::optional<std::string> exit_code;  // only in status documents
};

struct Backoff {
  std::optional<std::string> duration;      // Go duration or seconds
  std::optional<std::string> factor;        // int or string
  std::optional<std::string> max_duration;
  std::optional<std::string> cap;           // deprecated alias of maxDuration
  Location loc;
};

enum class RetryPolicy { kUnset, kAlways, kOnFailure, kOnError, kOnTransientError };

struct RetryStrategy {
  std::optional<std::string> limit;  // int or string (may be templated)
  RetryPolicy retry_policy = RetryPolicy::kUnset;
  std::optional<Backoff> backoff;
  std::string expression;
  Json affinity;                     // {nodeAntiAffinity: {}}
  Location loc;
  Location limit_loc;
  Location expression_loc;
};

struct Sequence {
  std::optional<std::string> count;
  std::optional<std::string> start;
  std::optional<std::string> end;
  std::string format;
  Location loc;
};

struct TemplateRef {
  std::string name;
  std::string template_name;
  bool cluster_scope = false;
  Location loc;
};

struct ContinueOn {
  bool error = false;
  bool failed = false;
};

struct Template;

// A lifecycle hook: spec.hooks, or a task's / step's hooks. "exit" is the exit handler.
struct LifecycleHook {
  std::string name;  // the map key: "exit" or a user name with an `expression`
  std::string template_name;
  Boxed<TemplateRef> template_ref;
  Arguments arguments;
  std::string expression;
  Location loc;
  Location expression_loc;
};

// A DAG task or a step of a steps template; they share every field but the dependency ones.
struct Invocation {
  std::string name;
  std::string template_name;
  Boxed<TemplateRef> template_ref;
  std::shared_ptr<const Template> inline_template;  // `inline:`; shared so specs stay copyable
  Arguments arguments;
  std::string when;
  Json with_items;           // null when absent, else a JSON array of scalars, lists or maps
  std::string with_param;
  Boxed<Sequence> with_sequence;
  std::optional<ContinueOn> continue_on;
  std::string on_exit;
  std::vector<LifecycleHook> hooks;
  // DAG tasks only.
  std::string depends;
  std::vector<std::string> dependencies;
  Location loc;
  Location name_loc;
  Location template_loc;
  Location when_loc;
  Location depends_loc;
  Location dependencies_loc;
  Location with_param_loc;
  Location with_items_loc;
  bool has_depends = false;
};

enum class TemplateType {
  kUnknown,  // none of the types was given (a validation error, except in templateDefaults)
  kContainer,
  kScript,
  kDag,
  kSteps,
  kSuspend,
  kResource,
  kContainerSet,
  kHttp,
  kData,
  kPlugin,
};
std::string_view TemplateTypeName(TemplateType type);

struct ScriptSpec {
  Json container;   // the Container fields (image, command, env, ...)
  std::string source;
};

struct DagSpec {
  std::vector<Invocation> tasks;
  std::string target;
  std::optional<bool> fail_fast;
  Location loc;
};

struct SuspendSpec {
  std::optional<std::string> duration;
};

struct ResourceSpec {
  std::string action;   // get | create | apply | delete | replace | patch
  std::string manifest;
  Json manifest_from;
  std::string success_condition;
  std::string failure_condition;
  std::string merge_strategy;
  bool set_owner_reference = false;
  std::vector<std::string> flags;
  Location action_loc;
};

struct HttpSpec {
  std::string method;
  std::string url;
  Json headers;
  std::string body;
  Json body_from;
  std::optional<int64_t> timeout_seconds;
  std::string success_condition;
  bool insecure_skip_verify = false;
};

struct Template {
  std::string name;
  TemplateType type = TemplateType::kUnknown;
  std::vector<TemplateType> extra_types;  // other type fields given too (a validation error)
  Inputs inputs;
  Outputs outputs;

  Json container;                     // container templates: a Container
  ScriptSpec script;
  DagSpec dag;
  std::vector<std::vector<Invocation>> steps;  // parallel groups, run in sequence
  Location steps_loc;
  SuspendSpec suspend;
  ResourceSpec resource;
  Json container_set;                 // {containers: [...], volumeMounts, retryStrategy}
  HttpSpec http;
  Json data;                          // {source: {artifactPaths: ...}, transformation: [...]}
  Json plugin;                        // {<plugin name>: {...}}

  std::map<std::string, std::string> node_selector;
  Json affinity;
  Json tolerations;
  Json volumes;
  Json init_containers;
  Json sidecars;
  Json security_context;
  Json metadata;                      // {labels, annotations} for the pod
  Json host_aliases;
  Json archive_location;
  Json memoize;
  Json metrics;
  Json synchronization;
  Json executor;
  std::optional<RetryStrategy> retry_strategy;
  std::optional<std::string> timeout;
  std::optional<std::string> active_deadline_seconds;  // int or string
  std::optional<std::string> parallelism;              // int or templated string
  std::optional<bool> fail_fast;
  bool daemon = false;
  std::string service_account_name;
  std::optional<bool> automount_service_account_token;
  std::string priority_class_name;
  std::string scheduler_name;
  std::string pod_spec_patch;
  std::optional<int64_t> priority;
  Json pod_resources;                 // v4: pod-level resources overriding spec.podResources
  Json resource_claims;               // v4: dynamic resource allocation claims

  Location loc;
  Location name_loc;
  Location timeout_loc;
  Location parallelism_loc;
};

struct WorkflowTemplateRef {
  std::string name;
  bool cluster_scope = false;
  Location loc;
};

// The spec of a Workflow or WorkflowTemplate, and a CronWorkflow's workflowSpec.
struct WorkflowSpec {
  std::string entrypoint;
  Arguments arguments;
  std::vector<Template> templates;
  std::string on_exit;
  std::map<std::string, LifecycleHook> hooks;
  std::optional<std::string> parallelism;
  std::optional<std::string> active_deadline_seconds;
  std::string service_account_name;
  std::optional<bool> automount_service_account_token;
  std::map<std::string, std::string> node_selector;
  Json affinity;
  Json tolerations;
  Json volumes;
  Json volume_claim_templates;
  Json volume_claim_gc;
  Json pod_gc;
  Json ttl_strategy;
  std::optional<int64_t> priority;
  std::optional<Template> template_defaults;
  std::optional<WorkflowTemplateRef> workflow_template_ref;
  Json synchronization;  // v3 singular mutex/semaphore and v4 plural mutexes/semaphores
  Json metrics;
  Json pod_metadata;
  Json workflow_metadata;
  Json security_context;
  Json image_pull_secrets;
  Json dns_config;
  std::string dns_policy;
  std::optional<bool> host_network;
  std::string pod_priority_class_name;
  std::string scheduler_name;
  std::string pod_spec_patch;
  std::string shutdown;
  std::optional<bool> suspend;
  std::optional<bool> archive_logs;
  Json artifact_repository_ref;
  Json artifact_gc;
  Json pod_disruption_budget;
  Json host_aliases;
  Json executor;
  Json pod_resources;    // v4: pod-level resources for every step's pod
  Json resource_claims;  // v4: dynamic resource allocation claims
  std::optional<RetryStrategy> retry_strategy;

  Location loc;
  Location entrypoint_loc;
  Location on_exit_loc;
};

struct CronSpec {
  std::vector<std::string> schedules;  // `schedule` (v3) and `schedules` (v4), in order
  std::vector<Location> schedule_locs;
  std::string timezone;
  Location timezone_loc;
  std::string concurrency_policy;      // Allow | Forbid | Replace
  Location concurrency_policy_loc;
  std::optional<int64_t> starting_deadline_seconds;
  bool suspend = false;
  std::optional<int64_t> successful_jobs_history_limit;
  std::optional<int64_t> failed_jobs_history_limit;
  std::string when;
  Location when_loc;
  Json stop_strategy;
  Json workflow_metadata;
};

struct EventBindingSpec {
  std::string selector;
  Location selector_loc;
  std::optional<WorkflowTemplateRef> workflow_template_ref;
  Arguments arguments;
};

// One document of a manifest file.
struct Manifest {
  ManifestKind kind = ManifestKind::kWorkflow;
  std::string api_version;
  Metadata metadata;
  WorkflowSpec spec;                     // Workflow, WorkflowTemplate, CronWorkflow's workflowSpec
  std::optional<CronSpec> cron;          // CronWorkflow only
  std::optional<EventBindingSpec> event; // WorkflowEventBinding only
  std::string file;                      // as given on the command line
  size_t document = 0;                   // 0-based index of the document in the file
  std::string spec_path;                 // "spec" or "spec.workflowSpec"
  Location loc;
  // Where each templated string ("{{...}}") inside pass-through JSON (containers, env, script
  // source, ...) was written, by field path; validation points its messages there.
  std::unordered_map<std::string, Location> value_locations;

  // "Workflow hello-world-" (generateName shows its trailing dash).
  std::string DisplayName() const;
};

}  // namespace kiln::dag

#endif  // KILN_DAG_SPEC_H_
