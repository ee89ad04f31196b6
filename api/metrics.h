// A small Prometheus registry for kiln server's GET /metrics: counters, gauges and histograms
// with labels, rendered in the text exposition format 0.0.4.
//
//   Metrics registry;
//   Counter& requests = registry.Counter("kiln_api_requests_total", "Requests served.",
//                                        {"method", "code"});
//   requests.Add({"GET", "200"});
//   Histogram& latency = registry.Histogram("kiln_api_request_seconds", "Request latency.",
//                                           {"method"}, {0.01, 0.1, 1});
//   latency.Observe({"GET"}, 0.042);
//   std::string body = registry.Render();  // served with kMetricsContentType
//
// Hand-written: prometheus-cpp is not among kiln's dependencies (nor packaged by Debian 12), and
// what the server needs is this much.
//
// Misuse is a programming error and aborts (KILN_CHECK): an invalid metric or label name, the
// same name registered twice with another type, help or labels, a wrong number of label values,
// a negative counter increment, unsorted histogram buckets.
//
// Thread-safety: everything here is thread-safe. Each metric has its own mutex, so updates of
// different metrics never contend; Render locks one metric at a time, so a scrape sees each
// metric consistent in itself (a histogram's buckets, sum and count agree) but not a snapshot of
// all of them at one instant. References returned by the registry stay valid while it lives.
#ifndef KILN_API_METRICS_H_
#define KILN_API_METRICS_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::api {

// The Content-Type of Metrics::Render's output.
inline constexpr std::string_view kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

// The label values of one series, in the order of the metric's label names. A view, like
// std::string_view: pass it as an argument, never store it.
//   counter.Add({"GET", "200"});
class LabelValues {
 public:
  LabelValues() = default;
  LabelValues(std::initializer_list<std::string_view> values) : values_(values.begin(), values.size()) {}
  LabelValues(std::span<const std::string_view> values) : values_(values) {}
  LabelValues(const std::vector<std::string_view>& values) : values_(values) {}

  size_t size() const { return values_.size(); }
  std::string_view operator[](size_t i) const { return values_[i]; }
  auto begin() const { return values_.begin(); }
  auto end() const { return values_.end(); }

 private:
  std::span<const std::string_view> values_;
};

namespace internal {

// Orders series by their label values; compares stored values with LabelValues without copying.
struct LabelLess {
  using is_transparent = void;
  bool operator()(const std::vector<std::string>& a, const std::vector<std::string>& b) const;
  bool operator()(const std::vector<std::string>& a, const LabelValues& b) const;
  bool operator()(const LabelValues& a, const std::vector<std::string>& b) const;
};

// What every kind of metric shares: name, help, label names, and rendering.
class MetricBase {
 public:
  MetricBase(std::string name, std::string help, std::vector<std::string> label_names);
  virtual ~MetricBase() = default;
  MetricBase(const MetricBase&) = delete;
  MetricBase& operator=(const MetricBase&) = delete;

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  const std::vector<std::string>& label_names() const { return label_names_; }
  // "counter", "gauge" or "histogram", as on the TYPE line.
  virtual std::string_view type() const = 0;
  // Appends the HELP and TYPE lines and every series to `out`.
  void Render(std::string& out) const;

 protected:
  // Appends every series' sample lines.
  virtual void RenderSamples(std::string& out) const = 0;
  // KILN_CHECKs that `labels` has one value per label name.
  void CheckArity(const LabelValues& labels) const;
  // Appends `name_ + suffix + {labels...[,extra_name="extra_value"]} value\n`.
  void AppendSample(std::string& out, std::string_view suffix, const std::vector<std::string>& labels,
                    double value, std::string_view extra_name = {},
                    std::string_view extra_value = {}) const;

 private:
  const std::string name_;
  const std::string help_;
  const std::vector<std::string> label_names_;
};

}  // namespace internal

// A value that only goes up (requests served, bytes sent), one per label set.
class Counter final : public internal::MetricBase {
 public:
  Counter(std::string name, std::string help, std::vector<std::string> label_names);
  std::string_view type() const override { return "counter"; }

  // Adds `delta` to the series of `labels`, creating it at 0 first.
  // REQUIRES: one value per label name; delta >= 0.
  void Add(LabelValues labels, double delta = 1);
  // The series' value; 0 for a series never added to.
  double Value(LabelValues labels) const;

 private:
  void RenderSamples(std::string& out) const override;

  mutable std::mutex mu_;
  std::map<std::vector<std::string>, double, internal::LabelLess> series_;  // guarded by mu_
};

// A value that goes up and down (workflows running, queue length), one per label set.
class Gauge final : public internal::MetricBase {
 public:
  Gauge(std::string name, std::string help, std::vector<std::string> label_names);
  std::string_view type() const override { return "gauge"; }

  // REQUIRES (all three): one value per label name.
  void Set(LabelValues labels, double value);
  void Add(LabelValues labels, double delta);
  // The series' value; 0 for a series never set.
  double Value(LabelValues labels) const;

 private:
  void RenderSamples(std::string& out) const override;

  mutable std::mutex mu_;
  std::map<std::vector<std::string>, double, internal::LabelLess> series_;  // guarded by mu_
};

// Observations (latencies, sizes) counted into fixed buckets, one set per label set. Rendered as
// cumulative name_bucket{le="bound"} lines ending with le="+Inf", then name_sum and name_count.
class Histogram final : public internal::MetricBase {
 public:
  // REQUIRES: `bounds` finite and strictly increasing ("+Inf" is always added); no label named le.
  Histogram(std::string name, std::string help, std::vector<std::string> label_names,
            std::vector<double> bounds);
  std::string_view type() const override { return "histogram"; }

  // Counts `value` into the first bucket whose bound is >= value (NaN: only into +Inf).
  // REQUIRES: one value per label name.
  void Observe(LabelValues labels, double value);
  // The series' number of observations and their sum; 0 for a series never observed.
  uint64_t Count(LabelValues labels) const;
  double Sum(LabelValues labels) const;
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  struct Series {
    std::vector<uint64_t> counts;  // per bucket, not cumulative; the last is +Inf
    double sum = 0;
    uint64_t count = 0;
  };

  void RenderSamples(std::string& out) const override;

  const std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::map<std::vector<std::string>, Series, internal::LabelLess> series_;  // guarded by mu_
};

// The registry: owns the metrics and renders them all, ordered by name.
class Metrics {
 public:
  Metrics() = default;
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Each returns the metric called `name`, registering it on first use; a later call with the
  // same name, type, help and labels returns the same metric. A metric without labels renders
  // its single series (at 0) from the start; one with labels renders the series used so far.
  // REQUIRES: `name` matches [a-zA-Z_:][a-zA-Z0-9_:]*, each label name [a-zA-Z_][a-zA-Z0-9_]*
  // and not starting with "__", label names distinct; not yet registered differently.
  api::Counter& Counter(std::string_view name, std::string_view help,
                        std::vector<std::string> label_names = {});
  api::Gauge& Gauge(std::string_view name, std::string_view help,
                    std::vector<std::string> label_names = {});
  api::Histogram& Histogram(std::string_view name, std::string_view help,
                            std::vector<std::string> label_names, std::vector<double> bounds);

  // Every metric in the text exposition format 0.0.4 (HELP, TYPE, then samples; label values
  // escaped), ordered by name, series ordered by label values.
  std::string Render() const;

 private:
  // Returns the registered metric `name` as T, or creates it with `make`, checking that a
  // registered one matches `help` and `label_names`.
  template <typename T, typename Make>
  T& GetOrAdd(std::string_view name, std::string_view help,
              const std::vector<std::string>& label_names, Make make);

  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<internal::MetricBase>, std::less<>> metrics_;  // guarded by mu_
};

}  // namespace kiln::api

#endif  // KILN_API_METRICS_H_
