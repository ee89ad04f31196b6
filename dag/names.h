// Name rules of Kubernetes (metadata names, labels) and Argo Workflows (templates, steps, tasks,
// parameters, artifacts). Each validator returns std::nullopt when the name is valid, else one
// sentence naming the bad value and, in Kubernetes' own wording, what is valid, e.g.
//   invalid name "My_WF": a lowercase RFC 1123 subdomain must consist of lower case ...
// Names holding "{{...}}" are resolved at run time; callers skip them (see HasTemplateTag in
// dag/quantity.h). Thread-safety: pure functions, safe from any thread.
#ifndef KILN_DAG_NAMES_H_
#define KILN_DAG_NAMES_H_

#include <optional>
#include <string>
#include <string_view>

namespace kiln::dag {

// Longest DNS-1123 subdomain (metadata.name of most objects) and label.
inline constexpr size_t kMaxDns1123SubdomainLength = 253;
inline constexpr size_t kMaxDns1123LabelLength = 63;
// Argo's workflowFieldMaxLength for template, step and task names.
inline constexpr size_t kMaxArgoFieldNameLength = 128;
// Longest generateName prefix: a subdomain less the 5 random characters Kubernetes appends.
inline constexpr size_t kMaxGenerateNameLength = 248;
// Longest label value, and longest name part of a label key.
inline constexpr size_t kMaxLabelLength = 63;

// A DNS-1123 subdomain: at most 253 characters of lower-case alphanumerics, '-' and '.',
// starting and ending with an alphanumeric (each dot-separated part too, as Kubernetes' regex
// requires). Errors: "invalid name ...".
std::optional<std::string> ValidateDns1123Subdomain(std::string_view name);

// A DNS-1123 label: at most 63 characters of lower-case alphanumerics and '-', starting and ending
// with an alphanumeric. Errors: "invalid name ...".
std::optional<std::string> ValidateDns1123Label(std::string_view name);

// An Argo template, step or task name (validate.go isValidWorkflowFieldName):
// ^[a-zA-Z0-9][-a-zA-Z0-9]*$ and at most 128 characters. Errors: "invalid name ...".
std::optional<std::string> ValidateArgoFieldName(std::string_view name);

// An Argo parameter or artifact name (validate.go isValidParamOrArtifactName): ^[-a-zA-Z0-9_]+$.
// Errors: "invalid name ...".
std::optional<std::string> ValidateParamOrArtifactName(std::string_view name);

// A metadata.generateName prefix: a DNS-1123 subdomain that may end with '-', at most 248
// characters, and that forms a subdomain when random characters follow (so not "a.-").
// Errors: "invalid generateName ...".
std::optional<std::string> ValidateGenerateName(std::string_view prefix);

// A label (or annotation) key: an optional DNS-1123 subdomain prefix and '/', then a name of at
// most 63 characters of alphanumerics, '-', '_' and '.', starting and ending with an alphanumeric.
// Errors: "invalid label key ...".
std::optional<std::string> ValidateLabelKey(std::string_view key);

// A label value: empty, or at most 63 characters of alphanumerics, '-', '_' and '.', starting and
// ending with an alphanumeric. Errors: "invalid label value ...".
std::optional<std::string> ValidateLabelValue(std::string_view value);

}  // namespace kiln::dag

#endif  // KILN_DAG_NAMES_H_
