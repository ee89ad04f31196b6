// The checks of a call's input that every Store implementation makes before it touches the
// database, so that all of them refuse the same input with the same words (docs/store.md).
// Thread-safety: pure functions.
#ifndef KILN_STORE_INTERNAL_CHECKS_H_
#define KILN_STORE_INTERNAL_CHECKS_H_

#include <string>
#include <string_view>

#include "base/error.h"
#include "store/records.h"
#include "store/store.h"

namespace kiln::store::internal {

// Errors: kInvalidArgument for an empty workflow uid, an empty node id or node workflow uid, or
// a workflow label with an empty key, or a key or value that is not UTF-8 or holds a NUL byte
// (PostgreSQL's text cannot hold either, and labels are read back as JSON).
Result<void> CheckBatch(const Batch& batch);

// Whether (kind, namespace_) can name templates: kind is kWorkflowTemplate with a namespace
// (or "" when `any_namespace`, for a list over every namespace) or kClusterWorkflowTemplate
// with namespace "". Errors: kInvalidArgument.
Result<void> CheckTemplateScope(std::string_view kind, std::string_view namespace_,
                                bool any_namespace);

// CheckTemplateScope of t's key, a name, and labels as CheckBatch wants them.
// Errors: kInvalidArgument.
Result<void> CheckTemplate(const TemplateRecord& t);

// Whether `text` is well-formed UTF-8 without NUL bytes: what PostgreSQL's text can hold, and
// so what both stores accept where one of them would otherwise refuse it.
bool IsStorableText(std::string_view text);

// How messages name a template: `WorkflowTemplate "ns/name"`, `ClusterWorkflowTemplate "name"`.
std::string TemplateName(std::string_view kind, std::string_view namespace_, std::string_view name);

}  // namespace kiln::store::internal

#endif  // KILN_STORE_INTERNAL_CHECKS_H_
