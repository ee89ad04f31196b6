// Kubernetes resource quantities ("500m", "1.5Gi", "2", "1e3"), as in
// k8s.io/apimachinery/pkg/api/resource. Thread-safety: pure functions, safe from any thread.
#ifndef KILN_DAG_QUANTITY_H_
#define KILN_DAG_QUANTITY_H_

#include <expected>
#include <string>
#include <string_view>

namespace kiln::dag {

// A parsed quantity. `value` is in base units (cores, bytes): "500m" -> 0.5, "1Gi" -> 1073741824.
// It is a double, so very large or very precise quantities are approximate; `text` keeps the
// exact spelling.
struct Quantity {
  double value = 0;
  std::string text;
};

// Parses `text` with the Kubernetes grammar: an optional sign, digits with an optional fraction
// ("1", "1.5", ".5", "5."), then one suffix: binary SI (Ki Mi Gi Ti Pi Ei), decimal SI (n u m k M
// G T P E, or none) or a decimal exponent ("1e3", "12E-2"). A YAML number is accepted by passing
// its text. No spaces, no other suffixes.
// Returns the quantity, or a one-sentence message naming the bad value, e.g.
//   invalid quantity "1.5GB": use a number with an optional suffix (...), e.g. "500m", ...
// REQUIRES: `text` holds no "{{...}}" placeholder (see HasTemplateTag); those are resolved at
// run time and cannot be checked here.
std::expected<Quantity, std::string> ParseQuantity(std::string_view text);

// True when `text` contains a "{{" template placeholder, which callers skip when validating
// statically.
bool HasTemplateTag(std::string_view text);

}  // namespace kiln::dag

#endif  // KILN_DAG_QUANTITY_H_
