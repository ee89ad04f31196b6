#include "api/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <utility>

#include "base/check.h"

namespace kiln::api {

namespace {

bool IsMetricName(std::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

bool IsLabelName(std::string_view name) {
  if (name.empty() || name.starts_with("__")) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

// As Prometheus' Go client writes sample values and bucket bounds: the shortest text that reads
// back as the same double, and +Inf, -Inf, NaN.
void AppendValue(std::string& out, double value) {
  if (std::isnan(value)) {
    out += "NaN";
  } else if (std::isinf(value)) {
    out += value > 0 ? "+Inf" : "-Inf";
  } else {
    char buffer[32];
    auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
    KILN_CHECK(ec == std::errc());
    out.append(buffer, end);
  }
}

std::string FormatValue(double value) {
  std::string out;
  AppendValue(out, value);
  return out;
}

void AppendEscapedLabelValue(std::string& out, std::string_view value) {
  for (char c : value) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
}

void AppendEscapedHelp(std::string& out, std::string_view help) {
  for (char c : help) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
}

std::vector<std::string> ToKey(const LabelValues& labels) {
  return std::vector<std::string>(labels.begin(), labels.end());
}

// Finds the series of `labels` in `series`, adding it as `initial` if absent, with one allocation
// only when it is new.
template <typename Map, typename Value>
typename Map::mapped_type& FindOrAdd(Map& series, const LabelValues& labels, Value&& initial) {
  auto it = series.find(labels);
  if (it == series.end()) it = series.emplace(ToKey(labels), std::forward<Value>(initial)).first;
  return it->second;
}

}  // namespace

namespace internal {

bool LabelLess::operator()(const std::vector<std::string>& a, const std::vector<std::string>& b) const {
  return a < b;
}

bool LabelLess::operator()(const std::vector<std::string>& a, const LabelValues& b) const {
  return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(),
                                      [](std::string_view x, std::string_view y) { return x < y; });
}

bool LabelLess::operator()(const LabelValues& a, const std::vector<std::string>& b) const {
  return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(),
                                      [](std::string_view x, std::string_view y) { return x < y; });
}

MetricBase::MetricBase(std::string name, std::string help, std::vector<std::string> label_names)
    : name_(std::move(name)), help_(std::move(help)), label_names_(std::move(label_names)) {
  KILN_CHECK(IsMetricName(name_));
  for (size_t i = 0; i < label_names_.size(); ++i) {
    KILN_CHECK(IsLabelName(label_names_[i]));
    for (size_t j = 0; j < i; ++j) KILN_CHECK(label_names_[i] != label_names_[j]);
  }
}

void MetricBase::Render(std::string& out) const {
  out += "# HELP ";
  out += name_;
  out += ' ';
  AppendEscapedHelp(out, help_);
  out += "\n# TYPE ";
  out += name_;
  out += ' ';
  out += type();
  out += '\n';
  RenderSamples(out);
}

void MetricBase::CheckArity(const LabelValues& labels) const {
  KILN_CHECK(labels.size() == label_names_.size());
}

void MetricBase::AppendSample(std::string& out, std::string_view suffix,
                              const std::vector<std::string>& labels, double value,
                              std::string_view extra_name, std::string_view extra_value) const {
  out += name_;
  out += suffix;
  if (!labels.empty() || !extra_name.empty()) {
    out += '{';
    bool first = true;
    auto label = [&](std::string_view name, std::string_view label_value) {
      if (!first) out += ',';
      first = false;
      out += name;
      out += "=\"";
      AppendEscapedLabelValue(out, label_value);
      out += '"';
    };
    for (size_t i = 0; i < labels.size(); ++i) label(label_names_[i], labels[i]);
    if (!extra_name.empty()) label(extra_name, extra_value);
    out += '}';
  }
  out += ' ';
  AppendValue(out, value);
  out += '\n';
}

}  // namespace internal

// Counter

Counter::Counter(std::string name, std::string help, std::vector<std::string> label_names)
    : MetricBase(std::move(name), std::move(help), std::move(label_names)) {
  if (this->label_names().empty()) series_.emplace(std::vector<std::string>{}, 0.0);
}

void Counter::Add(LabelValues labels, double delta) {
  CheckArity(labels);
  KILN_CHECK(delta >= 0);
  std::lock_guard lock(mu_);
  FindOrAdd(series_, labels, 0.0) += delta;
}

double Counter::Value(LabelValues labels) const {
  CheckArity(labels);
  std::lock_guard lock(mu_);
  auto it = series_.find(labels);
  return it == series_.end() ? 0 : it->second;
}

void Counter::RenderSamples(std::string& out) const {
  std::lock_guard lock(mu_);
  for (const auto& [labels, value] : series_) AppendSample(out, "", labels, value);
}

// Gauge

Gauge::Gauge(std::string name, std::string help, std::vector<std::string> label_names)
    : MetricBase(std::move(name), std::move(help), std::move(label_names)) {
  if (this->label_names().empty()) series_.emplace(std::vector<std::string>{}, 0.0);
}

void Gauge::Set(LabelValues labels, double value) {
  CheckArity(labels);
  std::lock_guard lock(mu_);
  FindOrAdd(series_, labels, 0.0) = value;
}

void Gauge::Add(LabelValues labels, double delta) {
  CheckArity(labels);
  std::lock_guard lock(mu_);
  FindOrAdd(series_, labels, 0.0) += delta;
}

double Gauge::Value(LabelValues labels) const {
  CheckArity(labels);
  std::lock_guard lock(mu_);
  auto it = series_.find(labels);
  return it == series_.end() ? 0 : it->second;
}

void Gauge::RenderSamples(std::string& out) const {
  std::lock_guard lock(mu_);
  for (const auto& [labels, value] : series_) AppendSample(out, "", labels, value);
}

// Histogram

Histogram::Histogram(std::string name, std::string help, std::vector<std::string> label_names,
                     std::vector<double> bounds)
    : MetricBase(std::move(name), std::move(help), std::move(label_names)),
      bounds_(std::move(bounds)) {
  for (const std::string& label : this->label_names()) KILN_CHECK(label != "le");
  for (size_t i = 0; i < bounds_.size(); ++i) {
    KILN_CHECK(std::isfinite(bounds_[i]));
    if (i > 0) KILN_CHECK(bounds_[i - 1] < bounds_[i]);
  }
  if (this->label_names().empty()) {
    series_.emplace(std::vector<std::string>{}, Series{std::vector<uint64_t>(bounds_.size() + 1), 0, 0});
  }
}

void Histogram::Observe(LabelValues labels, double value) {
  CheckArity(labels);
  // The first bound >= value; NaN compares false with everything and goes to +Inf.
  size_t bucket = std::isnan(value)
                      ? bounds_.size()
                      : static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), value) -
                                            bounds_.begin());
  std::lock_guard lock(mu_);
  auto it = series_.find(labels);
  if (it == series_.end()) {
    it = series_.emplace(ToKey(labels), Series{std::vector<uint64_t>(bounds_.size() + 1), 0, 0}).first;
  }
  Series& series = it->second;
  ++series.counts[bucket];
  series.sum += value;
  ++series.count;
}

uint64_t Histogram::Count(LabelValues labels) const {
  CheckArity(labels);
  std::lock_guard lock(mu_);
  auto it = series_.find(labels);
  return it == series_.end() ? 0 : it->second.count;
}

double Histogram::Sum(LabelValues labels) const {
  CheckArity(labels);
  std::lock_guard lock(mu_);
  auto it = series_.find(labels);
  return it == series_.end() ? 0 : it->second.sum;
}

void Histogram::RenderSamples(std::string& out) const {
  // The bounds' text is the same for every series.
  std::vector<std::string> les;
  les.reserve(bounds_.size() + 1);
  for (double bound : bounds_) les.push_back(FormatValue(bound));
  les.push_back("+Inf");

  std::lock_guard lock(mu_);
  for (const auto& [labels, series] : series_) {
    uint64_t cumulative = 0;
    for (size_t i = 0; i < series.counts.size(); ++i) {
      cumulative += series.counts[i];
      AppendSample(out, "_bucket", labels, static_cast<double>(cumulative), "le", les[i]);
    }
    AppendSample(out, "_sum", labels, series.sum);
    AppendSample(out, "_count", labels, static_cast<double>(series.count));
  }
}

// Metrics

template <typename T, typename Make>
T& Metrics::GetOrAdd(std::string_view name, std::string_view help,
                     const std::vector<std::string>& label_names, Make make) {
  std::lock_guard lock(mu_);
  auto it = metrics_.find(name);
  if (it == metrics_.end()) {
    it = metrics_.emplace(std::string(name), make()).first;
  }
  // Registering a name twice differently is a programming error: two parts of the server would
  // otherwise write different things under one name.
  T* metric = dynamic_cast<T*>(it->second.get());
  KILN_CHECK(metric != nullptr);
  KILN_CHECK(metric->help() == help);
  KILN_CHECK(metric->label_names() == label_names);
  return *metric;
}

api::Counter& Metrics::Counter(std::string_view name, std::string_view help,
                               std::vector<std::string> label_names) {
  return GetOrAdd<api::Counter>(name, help, label_names, [&] {
    return std::make_unique<api::Counter>(std::string(name), std::string(help), label_names);
  });
}

api::Gauge& Metrics::Gauge(std::string_view name, std::string_view help,
                           std::vector<std::string> label_names) {
  return GetOrAdd<api::Gauge>(name, help, label_names, [&] {
    return std::make_unique<api::Gauge>(std::string(name), std::string(help), label_names);
  });
}

api::Histogram& Metrics::Histogram(std::string_view name, std::string_view help,
                                   std::vector<std::string> label_names, std::vector<double> bounds) {
  api::Histogram& histogram = GetOrAdd<api::Histogram>(name, help, label_names, [&] {
    return std::make_unique<api::Histogram>(std::string(name), std::string(help), label_names, bounds);
  });
  KILN_CHECK(histogram.bounds() == bounds);
  return histogram;
}

std::string Metrics::Render() const {
  // Metrics are never removed, so the pointers stay valid after the registry's lock is released;
  // rendering then holds one metric's lock at a time and never blocks a registration.
  std::vector<const internal::MetricBase*> metrics;
  {
    std::lock_guard lock(mu_);
    metrics.reserve(metrics_.size());
    for (const auto& [name, metric] : metrics_) metrics.push_back(metric.get());
  }
  std::string out;
  for (const internal::MetricBase* metric : metrics) metric->Render(out);
  return out;
}

}  // namespace kiln::api
