// Semantic validation of parsed manifests: references, names, cycles, expressions, quantities.
// Thread-safety: Validate is reentrant; a TemplateLibrary is immutable once filled.
#ifndef KILN_DAG_VALIDATE_H_
#define KILN_DAG_VALIDATE_H_

#include <map>
#include <string>
#include <string_view>

#include "dag/diagnostic.h"
#include "dag/spec.h"

namespace kiln::dag {

// WorkflowTemplates and ClusterWorkflowTemplates by name, for templateRef and workflowTemplateRef.
// Holds pointers: the manifests must outlive the library.
class TemplateLibrary {
 public:
  void Add(const Manifest& manifest);  // ignores other kinds
  const Manifest* Find(std::string_view name, bool cluster_scope) const;
  // The template `template_name` of WorkflowTemplate `name`, or nullptr.
  const Template* FindTemplate(std::string_view name, std::string_view template_name,
                               bool cluster_scope) const;
  bool empty() const { return namespaced_.empty() && cluster_.empty(); }

 private:
  std::map<std::string, const Manifest*, std::less<>> namespaced_;
  std::map<std::string, const Manifest*, std::less<>> cluster_;
};

// Finds a template of `spec` by name; nullptr when there is none.
const Template* FindTemplate(const WorkflowSpec& spec, std::string_view name);

// Reports every problem of `manifest` into `diags` (errors and warnings), each with file,
// line:column and field path. References to WorkflowTemplates missing from `library` are
// reported as warnings (they may exist in the cluster).
void Validate(const Manifest& manifest, const TemplateLibrary& library, Diagnostics& diags);

}  // namespace kiln::dag

#endif  // KILN_DAG_VALIDATE_H_
