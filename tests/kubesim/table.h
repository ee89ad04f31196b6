// meta.k8s.io/v1 Table output (what `kubectl get` asks for), with the columns and cell texts of
// the apiserver's printers for pods, jobs, nodes and namespaces; other resources get Name and
// Age. Thread-safety: pure functions.
#ifndef KILN_TESTS_KUBESIM_TABLE_H_
#define KILN_TESTS_KUBESIM_TABLE_H_

#include <chrono>
#include <string>
#include <vector>

#include "tests/kubesim/store.h"

namespace kiln::kubesim {

json ToTable(const ResourceInfo& r, const std::vector<ObjectPtr>& objects,
             const std::string& resource_version);

// duration.HumanDuration: "45s", "3m12s", "5h", "2d3h", ...
std::string HumanDuration(std::chrono::seconds d);

}  // namespace kiln::kubesim

#endif  // KILN_TESTS_KUBESIM_TABLE_H_
