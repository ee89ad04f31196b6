// The Kubernetes executor's pure part: the batch/v1 Job that runs one attempt of a step, its
// deterministic name and labels, and how a finished pod's termination message becomes outputs.
// No I/O; tested without a cluster (tests/kubernetes/job_test.cc).
// Thread-safety: pure functions.
#ifndef KILN_EXECUTOR_KUBERNETES_JOB_H_
#define KILN_EXECUTOR_KUBERNETES_JOB_H_

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "executor/accelerators.h"
#include "dag/spec.h"
#include "scheduler/state.h"

namespace kiln::executor {

// Labels and annotations kiln puts on its Jobs and their pods.
inline constexpr std::string_view kLabelWorkflow = "kiln.dev/workflow";
inline constexpr std::string_view kLabelNode = "kiln.dev/node";
inline constexpr std::string_view kLabelAttempt = "kiln.dev/attempt";
// The run's uid: how a deleted workflow's Jobs are found (and only its, not a later run's of the
// same name).
inline constexpr std::string_view kLabelWorkflowUid = "kiln.dev/workflow-uid";
inline constexpr std::string_view kAnnotationNode = "kiln.dev/node";  // the node id, unabridged
inline constexpr std::string_view kAnnotationWorkflowUid = "kiln.dev/workflow-uid";

struct JobContext {
  std::string namespace_ = "default";
  std::string workflow;      // the workflow's name
  std::string workflow_uid;  // kiln's uid of the run (part of every Job name's hash)
  // Workflow-level pod defaults (nodeSelector, tolerations, ...); may be null.
  const dag::WorkflowSpec* spec = nullptr;
  std::optional<int64_t> ttl_seconds_after_finished;
  // The `kiln exec` agent (cli/exec.cc), which reports outputs.result and output parameters
  // read from files: with agent_image, an init container copies /usr/local/bin/kiln from that
  // image into an emptyDir; with agent_path, the kiln binary is already at that path in every
  // step's container. Neither: no agent (outputs only from a JSON termination message).
  std::string agent_image;
  std::string agent_path;
  // The artifact repository: a ReadWriteMany PersistentVolumeClaim of the Job's namespace that
  // the agent mounts at artifact_mount in every step with artifacts, laid out as the local one
  // (executor/local_artifact_repository.h). Empty: steps with artifacts are refused.
  std::string artifact_pvc;
  std::string artifact_mount = "/kiln-artifacts";
  // Resource templates act with kiln's own credentials, not the workflow's service account;
  // kiln server, which runs other people's workflows, confines them to the workflow's
  // namespace and to namespaced kinds. kiln run, with the user's own kubeconfig, does not.
  bool confine_resources = false;
  // Profiles for kiln.dev/accelerator; null: the built-in ones.
  const AcceleratorProfiles* accelerators = nullptr;
};

// A label value for `s`: itself when it is one (<= 63 characters of [A-Za-z0-9._-], alphanumeric
// at both ends); otherwise the invalid characters become '-', the ends are trimmed, and when
// anything changed an 8-hex-digit hash of `s` is appended (after truncation to fit 63), so two
// different inputs never share a value. Empty stays empty.
std::string LabelValue(std::string_view s);

// The Job name of `attempt` of `node` in run `workflow_uid`: "<node as DNS-1123>-<attempt>-<hash>",
// lowercase, at most 63 characters (the node part truncated), hash = 8 hex digits of
// (workflow_uid, node, attempt). Deterministic, so a restarted kiln finds (adopts) its Jobs;
// the uid in the hash keeps a rerun of a same-named workflow from adopting old Jobs.
// `fallback` > 0: the Job of the attempt's fallback-th accelerator (kiln.dev/accelerator), a
// different hash.
std::string JobName(std::string_view workflow_uid, std::string_view node, int attempt, int fallback = 0);

// Whether `tolerations` (a JSON array, or null) already tolerate the taint nvidia.com/gpu with
// effect NoSchedule, whatever its value.
bool ToleratesGpuTaint(const dag::Json& tolerations);

// The Job for `step`: backoffLimit 0, restartPolicy Never, podFailurePolicy ignoring pods that
// fail with DisruptionTarget (preemption, eviction, node loss: the Job makes a new pod without
// counting it), activeDeadlineSeconds from the template, the pod from the template and the
// workflow defaults (see docs/kubernetes.md for the fields). Errors (kInvalidArgument) for what
// the executor cannot run yet: non-container templates, a script without a command, artifacts
// without the agent and the artifact volume.
// `fallback`: which accelerator of the step's kiln.dev/accelerator list the pod asks for (its
// profile becomes required node affinity); pods requesting no GPU get the profiles' cpuOnlySteps
// affinity, when configured.
Result<nlohmann::json> BuildJob(const scheduler::LaunchStep& step, const JobContext& ctx, int fallback = 0);

// spec.volumeClaimTemplates on Kubernetes, as Argo does them: each template is a
// PersistentVolumeClaim of the workflow named "<workflow>-<template name>", created before the
// first Job that mounts it and labelled kiln.dev/workflow and kiln.dev/workflow-uid; a step's
// volume of that name (LaunchStep::volumes, "kiln.dev/per-workflow") mounts that claim.
std::string WorkflowClaimName(std::string_view workflow, std::string_view name);
// The claims of ctx.spec's volumeClaimTemplates, ready to POST (templates without a name are
// skipped: validation reports them). kInvalidArgument for a name over 253 characters.
Result<std::vector<nlohmann::json>> WorkflowClaims(const JobContext& ctx);
// Whether a workflow's claims are deleted when it ends: spec.volumeClaimGC.strategy
// OnWorkflowCompletion always; OnWorkflowSuccess (Argo's default) only when it Succeeded.
bool CollectClaims(const dag::WorkflowSpec& spec, bool succeeded);

// The pod annotations of `step` (workflow podMetadata, then the template's metadata), where
// kiln.dev/accelerator and kiln.dev/pending-timeout are read.
nlohmann::json PodAnnotations(const scheduler::LaunchStep& step, const JobContext& ctx);

// Outputs carried by a container's termination message: {"parameters": {name: value} or
// [{name, value}], "result": "...", "artifacts": {name: ArtifactRef JSON}} (what `kiln exec`
// writes). nullopt when the message is not such JSON (a FallbackToLogsOnError log tail, say).
// The artifacts' locations are empty: the reader knows where its repository is.
struct TerminationOutputs {
  std::map<std::string, std::string> parameters;
  std::map<std::string, scheduler::ArtifactRef> artifacts;
  std::optional<std::string> result;
  std::string note;   // e.g. why outputs.result was left out
  std::string error;  // the agent could not report the outputs: the step fails with this
  // A message too large for Kubernetes, stored by the agent in the artifact repository: this
  // ref's blob is the whole message (the other fields are then empty).
  std::optional<scheduler::ArtifactRef> stored;
};
std::optional<TerminationOutputs> ParseTerminationMessage(std::string_view message);

}  // namespace kiln::executor

#endif  // KILN_EXECUTOR_KUBERNETES_JOB_H_
