#include "api/metrics.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <string>
#include <thread>
#include <vector>

namespace kiln::api {
namespace {

TEST_CASE("metrics: counters and gauges render as Prometheus text, ordered by name", "[api][metrics]") {
  Metrics registry;
  Gauge& running = registry.Gauge("kiln_workflows_running", "Workflows running now.");
  Counter& requests =
      registry.Counter("kiln_api_requests_total", "Requests served.", {"method", "code"});
  requests.Add({"POST", "201"});
  requests.Add({"GET", "200"});
  requests.Add({"GET", "200"}, 2);
  running.Set({}, 3);
  running.Add({}, -1);

  CHECK(registry.Render() ==
        "# HELP kiln_api_requests_total Requests served.\n"
        "# TYPE kiln_api_requests_total counter\n"
        "kiln_api_requests_total{method=\"GET\",code=\"200\"} 3\n"
        "kiln_api_requests_total{method=\"POST\",code=\"201\"} 1\n"
        "# HELP kiln_workflows_running Workflows running now.\n"
        "# TYPE kiln_workflows_running gauge\n"
        "kiln_workflows_running 2\n");
  CHECK(requests.Value({"GET", "200"}) == 3);
  CHECK(requests.Value({"GET", "404"}) == 0);
  CHECK(running.Value({}) == 2);
}

TEST_CASE("metrics: a metric without labels shows 0 at once, one with labels only its used series",
          "[api][metrics]") {
  Metrics registry;
  registry.Counter("a_total", "Unlabelled.");
  registry.Gauge("b", "Labelled.", {"phase"});
  registry.Histogram("c_seconds", "Unlabelled histogram.", {}, {1});
  CHECK(registry.Render() ==
        "# HELP a_total Unlabelled.\n"
        "# TYPE a_total counter\n"
        "a_total 0\n"
        "# HELP b Labelled.\n"
        "# TYPE b gauge\n"
        "# HELP c_seconds Unlabelled histogram.\n"
        "# TYPE c_seconds histogram\n"
        "c_seconds_bucket{le=\"1\"} 0\n"
        "c_seconds_bucket{le=\"+Inf\"} 0\n"
        "c_seconds_sum 0\n"
        "c_seconds_count 0\n");
}

TEST_CASE("metrics: label values and help text are escaped", "[api][metrics]") {
  Metrics registry;
  Counter& c = registry.Counter("kiln_paths_total", "Paths with \\ and\nnewlines \"kept\".", {"path"});
  c.Add({"C:\\dir\\\"quoted\"\nnext"});
  CHECK(registry.Render() ==
        "# HELP kiln_paths_total Paths with \\\\ and\\nnewlines \"kept\".\n"
        "# TYPE kiln_paths_total counter\n"
        "kiln_paths_total{path=\"C:\\\\dir\\\\\\\"quoted\\\"\\nnext\"} 1\n");
}

TEST_CASE("metrics: histogram buckets are cumulative and end with +Inf", "[api][metrics]") {
  Metrics registry;
  Histogram& h = registry.Histogram("kiln_api_request_seconds", "Request latency.", {"method"},
                                    {0.25, 0.5, 1});
  h.Observe({"GET"}, 0.125);
  h.Observe({"GET"}, 0.25);  // on a bound: counted in that bucket (le is "less or equal")
  h.Observe({"GET"}, 0.375);
  h.Observe({"GET"}, 2);
  h.Observe({"DELETE"}, 0.75);
  CHECK(registry.Render() ==
        "# HELP kiln_api_request_seconds Request latency.\n"
        "# TYPE kiln_api_request_seconds histogram\n"
        "kiln_api_request_seconds_bucket{method=\"DELETE\",le=\"0.25\"} 0\n"
        "kiln_api_request_seconds_bucket{method=\"DELETE\",le=\"0.5\"} 0\n"
        "kiln_api_request_seconds_bucket{method=\"DELETE\",le=\"1\"} 1\n"
        "kiln_api_request_seconds_bucket{method=\"DELETE\",le=\"+Inf\"} 1\n"
        "kiln_api_request_seconds_sum{method=\"DELETE\"} 0.75\n"
        "kiln_api_request_seconds_count{method=\"DELETE\"} 1\n"
        "kiln_api_request_seconds_bucket{method=\"GET\",le=\"0.25\"} 2\n"
        "kiln_api_request_seconds_bucket{method=\"GET\",le=\"0.5\"} 3\n"
        "kiln_api_request_seconds_bucket{method=\"GET\",le=\"1\"} 3\n"
        "kiln_api_request_seconds_bucket{method=\"GET\",le=\"+Inf\"} 4\n"
        "kiln_api_request_seconds_sum{method=\"GET\"} 2.75\n"
        "kiln_api_request_seconds_count{method=\"GET\"} 4\n");
  CHECK(h.Count({"GET"}) == 4);
  CHECK(h.Sum({"GET"}) == 2.75);
  CHECK(h.Count({"PUT"}) == 0);
}

TEST_CASE("metrics: values are written as Prometheus reads them", "[api][metrics]") {
  Metrics registry;
  Gauge& g = registry.Gauge("g", "Values.", {"k"});
  g.Set({"a"}, 1.5);
  g.Set({"b"}, -0.001);
  g.Set({"c"}, 1e21);
  g.Set({"d"}, std::numeric_limits<double>::infinity());
  g.Set({"e"}, -std::numeric_limits<double>::infinity());
  g.Set({"f"}, std::nan(""));
  g.Set({"g"}, 123456789);
  CHECK(registry.Render() ==
        "# HELP g Values.\n"
        "# TYPE g gauge\n"
        "g{k=\"a\"} 1.5\n"
        "g{k=\"b\"} -0.001\n"
        "g{k=\"c\"} 1e+21\n"
        "g{k=\"d\"} +Inf\n"
        "g{k=\"e\"} -Inf\n"
        "g{k=\"f\"} NaN\n"
        "g{k=\"g\"} 123456789\n");
}

TEST_CASE("metrics: registering a name again returns the same metric", "[api][metrics]") {
  Metrics registry;
  Counter& first = registry.Counter("x_total", "X.", {"a"});
  Counter& second = registry.Counter("x_total", "X.", {"a"});
  CHECK(&first == &second);
  first.Add({"1"});
  second.Add({"1"});
  CHECK(first.Value({"1"}) == 2);

  // Label values may come from runtime vectors too.
  std::vector<std::string_view> labels = {"1"};
  first.Add(labels, 3);
  CHECK(second.Value(labels) == 5);
}

TEST_CASE("metrics: concurrent updates from several threads all count", "[api][metrics]") {
  Metrics registry;
  Counter& counter = registry.Counter("kiln_test_total", "Concurrent adds.", {"worker_kind"});
  Gauge& gauge = registry.Gauge("kiln_test_gauge", "Concurrent adds.");
  Histogram& histogram = registry.Histogram("kiln_test_seconds", "Concurrent observations.", {},
                                            {0.5, 1.5});
  constexpr int kThreads = 8;
  constexpr int kPerThread = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string kind = t % 2 == 0 ? "even" : "odd";
      for (int i = 0; i < kPerThread; ++i) {
        counter.Add({kind});
        counter.Add({"all"}, 1);
        gauge.Add({}, 1);
        histogram.Observe({}, i % 2);  // 0 or 1
        if (i % 1000 == 0) (void)registry.Render();  // renders while others write
      }
    });
  }
  for (std::thread& thread : threads) thread.join();

  CHECK(counter.Value({"all"}) == kThreads * kPerThread);
  CHECK(counter.Value({"even"}) == kThreads / 2 * kPerThread);
  CHECK(counter.Value({"odd"}) == kThreads / 2 * kPerThread);
  CHECK(gauge.Value({}) == kThreads * kPerThread);
  CHECK(histogram.Count({}) == kThreads * kPerThread);
  CHECK(histogram.Sum({}) == kThreads * kPerThread / 2);
  std::string text = registry.Render();
  CHECK(text.find("kiln_test_seconds_bucket{le=\"0.5\"} 80000\n") != std::string::npos);
  CHECK(text.find("kiln_test_seconds_bucket{le=\"1.5\"} 160000\n") != std::string::npos);
  CHECK(text.find("kiln_test_seconds_bucket{le=\"+Inf\"} 160000\n") != std::string::npos);
  CHECK(text.find("kiln_test_total{worker_kind=\"all\"} 160000\n") != std::string::npos);
}

}  // namespace
}  // namespace kiln::api
