// The Kubernetes executor against kubesim (issue 5): kiln's scheduler::Driver with the
// executor::KubernetesStepRunner in this process, kubesim (tests/kubesim/) as a child process
// with simulated pods (--kubelet simulate) on tests/kubesim/clusters/bench-50x110.yaml. The
// driver's recorder does nothing, so no store's commit is in the figures.
//
//   kubernetes_bench              the standard matrix, each case in a child process (so the
//                                 memory figures are per case), printed as two markdown tables
//   kubernetes_bench --smoke      a 50-step fan-out and a 5-layer chain in this process (the
//                                 ctest that keeps the benchmark from rotting; no timing checks)
//   kubernetes_bench --case fanout|chain [options]   one case, one table row
//     --steps N        fan-out width (default 5000) or chain length (default 100)
//     --qps Q --burst B  the client's rate limit (kube::ClientOptions; default 50/100)
//     --repeat R       chains run one after another on one kubesim (default 3)
//     --no-log-copy    KubernetesOptions::log_path empty: no pods/log read, no copy written
//     --pod-duration D chain: how long each pod runs (kubesim.kiln.dev/duration; default 0s)
//     --tls            HTTPS to kubesim (default plain HTTP)
//
// fanout: one dag task with withSequence count N; every pod runs for an hour (annotation
// kubesim.kiln.dev/duration), so no step finishes during the run and every request the client
// sends is a create (plus the two list+watches). The case ends when every step has been
// reported Running. Figures: the times the client saw each Job POST answered (201), from
// ClientOptions::observe; creates/s from the first to the last; "of limit": the time the token
// bucket needs for N creates (it starts full: (N - burst) / qps) over the time taken; the steady
// rate after the first `burst` creates; kiln's CPU time per step; memory per active step: VmRSS
// and heap in use (mallinfo2) once all N are Running, minus both before the driver started,
// over N.
//
// chain: N dag tasks, each depending on the one before, pods of 0 s. For each step but the last,
// the latency from its Job's Complete to the create of the next step's Job, in parts:
//   A  the Job's MODIFIED event with condition Complete, read by a second watch on its own
//      client and thread in this process (the runner's own watch reads the same event on the
//      driver's thread; kubesim writes both streams when the status commits)
//   B  kubesim receives the runner's list of the Job's pods (audit log requestReceivedTimestamp);
//      absent when the runner already had the ended pod from its pod watch
//   C  kubesim receives the GET of the pod's log (audit log; absent with --no-log-copy)
//   D  the runner reports StepFinished to the driver (a StepRunner wrapper around the runner)
//   E  the driver calls Launch for the next step (the same wrapper)
//   F  kubesim receives the POST of the next step's Job (audit log)
// A->F is the figure; A->B, B->C (the pod list, when made), C->D (the log read and its fsync'ed
// copy), A->D, D->E (the controller) and E->F (Job built, rate limit, sent) its parts. All on the
// system clock of this machine.
#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
// clang-format off
#include <utility>
// clang-format on

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <future>
#include <iterator>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "dag/parse.h"
#include "executor/kubernetes_step_runner.h"
#include "kube/client.h"
#include "kube/kubeconfig.h"
#include "scheduler/controller.h"
#include "scheduler/driver.h"
#include "tests/kubesim/test_util.h"

namespace {

namespace asio = boost::asio;
namespace sch = kiln::scheduler;
using kiln::kubesim::testing::Kubesim;
using kiln::kubesim::testing::TempDir;
using nlohmann::json;
using Steady = std::chrono::steady_clock;
using Sys = std::chrono::system_clock;

constexpr const char* kCluster = "bench-50x110.yaml";

struct Options {
  std::string case_name;  // "fanout", "chain"; empty: the matrix
  int steps = 0;          // 0: the case's default
  double qps = 50;
  int burst = 100;
  int repeat = 3;
  bool log_copy = true;
  std::string pod_duration = "0s";  // chain
  bool tls = false;
  bool smoke = false;
};

[[noreturn]] void Die(const std::string& why) {
  std::fprintf(stderr, "kubernetes_bench: %s\n", why.c_str());
  std::exit(1);
}

double Ms(Sys::time_point a, Sys::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}
double Seconds(Steady::time_point a, Steady::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

double CpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
         ru.ru_stime.tv_usec / 1e6;
}

// VmRSS of this process in bytes (kubesim is another process and not counted).
size_t RssBytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  }
  return 0;
}

// CPU seconds of kubesim, this process's one child (/proc/PID/task/PID/children); -1 when
// /proc does not say.
double KubesimCpuSeconds() {
  std::ifstream children("/proc/self/task/" + std::to_string(getpid()) + "/children");
  long child = 0;
  if (!(children >> child)) return -1;
  std::ifstream stat("/proc/" + std::to_string(child) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  size_t paren = text.rfind(')');
  if (paren == std::string::npos) return -1;
  std::istringstream fields(text.substr(paren + 2));
  std::string field;
  long utime = 0, stime = 0;
  for (int i = 3; fields >> field; ++i) {  // field 3 is the state; 14 utime, 15 stime
    if (i == 14) utime = std::stol(field);
    if (i == 15) stime = std::stol(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

size_t HeapInUse() {
  struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  return v[i];
}

// "2026-11-24T14:03:35.123456Z" (the audit log's MicroTime) on the system clock.
std::optional<Sys::time_point> ParseMicroTime(const std::string& s) {
  std::tm tm{};
  int micros = 0;
  char frac[16] = {0};
  if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d.%15[0-9]", &tm.tm_year, &tm.tm_mon,
                  &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, frac) < 6) {
    return std::nullopt;
  }
  std::string f = std::string(frac).substr(0, 6);
  f.resize(6, '0');
  micros = std::stoi(f);
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return Sys::from_time_t(timegm(&tm)) + std::chrono::microseconds(micros);
}

// Wraps the runner to time the driver's calls and the runner's reports (leveldb's EnvWrapper).
class TimedRunner : public sch::StepRunner {
 public:
  struct Times {
    std::optional<Sys::time_point> launched, started, finished;
    bool failed = false;
  };

  explicit TimedRunner(sch::StepRunner& inner) : inner_(inner) {}

  void Launch(const sch::LaunchStep& step, std::function<void(sch::Event)> report) override {
    times_[step.node].launched = Sys::now();
    if (!first_launch_) first_launch_ = Steady::now();
    inner_.Launch(step, [this, node = step.node, report = std::move(report)](sch::Event e) {
      Times& t = times_[node];
      if (std::holds_alternative<sch::StepStarted>(e)) {
        t.started = Sys::now();
        ++started_;
        last_started_ = Steady::now();
      } else if (const auto* f = std::get_if<sch::StepFinished>(&e)) {
        t.finished = Sys::now();
        t.failed = f->error || f->exit_code != 0;
      }
      report(std::move(e));
      if (on_report) on_report();
    });
  }
  void Kill(const std::string& node) override { inner_.Kill(node); }
  bool StepsOutliveRunner() const override { return inner_.StepsOutliveRunner(); }

  const std::map<std::string, Times>& times() const { return times_; }
  int started() const { return started_; }
  std::optional<Steady::time_point> first_launch() const { return first_launch_; }
  Steady::time_point last_started() const { return last_started_; }
  std::function<void()> on_report;  // after each report was handed to the driver

 private:
  sch::StepRunner& inner_;
  std::map<std::string, Times> times_;
  int started_ = 0;
  std::optional<Steady::time_point> first_launch_;
  Steady::time_point last_started_{};
};

// kubesim, a client on `io`, and workflows run on them.
class Bench {
 public:
  Bench(const Options& o, std::vector<std::string> extra_flags,
        kiln::kube::ClientOptions client_options)
      : sim_(kCluster, Flags(o, std::move(extra_flags))) {
    auto config = kiln::kube::LoadKubeconfig(sim_.kubeconfig());
    if (!config) Die("kubeconfig: " + config.error().ToString());
    config_ = *config;
    auto client = kiln::kube::Client::Create(io_, *config, std::move(client_options));
    if (!client) Die("client: " + client.error().ToString());
    client_ = std::move(*client);
  }

  // Parses `yaml` and makes its state; the manifest lives as long as the Bench.
  sch::WorkflowState NewState(const std::string& yaml) {
    kiln::dag::Diagnostics diags;
    manifests_.push_back(std::make_unique<std::vector<kiln::dag::Manifest>>(
        kiln::dag::ParseManifests("bench.yaml", yaml, kiln::dag::ParseOptions{}, diags)));
    if (diags.has_errors() || manifests_.back()->empty())
      Die("the generated manifest does not parse");
    const kiln::dag::Manifest& m = manifests_.back()->back();
    library_.Add(m);
    auto state = sch::NewWorkflow(m, library_, "uid-" + std::to_string(manifests_.size()), {});
    if (!state) Die("NewWorkflow: " + state.error().ToString());
    return std::move(*state);
  }

  kiln::executor::KubernetesOptions RunnerOptions(const sch::WorkflowState& s,
                                                  const std::string& log_dir) const {
    kiln::executor::KubernetesOptions ro;
    ro.job.namespace_ = "default";
    ro.job.workflow = s.name;
    ro.job.workflow_uid = s.uid;
    ro.job.spec = &manifests_.back()->back().spec;
    if (!log_dir.empty()) {
      ro.log_path = [log_dir](const std::string& node) { return log_dir + "/" + node + ".log"; };
    }
    return ro;
  }

  // Runs `s` with `runner` until `stop()` says so after a report, or the workflow ends; fails
  // the benchmark after `bound`.
  void Run(sch::WorkflowState& s, TimedRunner& runner, std::chrono::seconds bound,
           std::function<bool()> stop) {
    auto recorder = [](const sch::WorkflowState&, const sch::Event&,
                       const sch::Transition&) -> kiln::Result<void> { return {}; };
    auto observer = [this](const sch::WorkflowState& after, const sch::Transition&) {
      if (sch::IsDone(after.phase)) io_.stop();
    };
    sch::Driver driver(io_, s, library_, runner, recorder, observer);
    runner.on_report = [this, &stop] {
      if (stop && stop()) io_.stop();
    };
    asio::steady_timer timer(io_, bound);
    bool timed_out = false;
    timer.async_wait([&](const boost::system::error_code& ec) {
      if (!ec) {
        timed_out = true;
        io_.stop();
      }
    });
    io_.restart();
    driver.Start();
    io_.run();
    timer.cancel();
    runner.on_report = nullptr;
    if (timed_out) Die("the run did not end within " + std::to_string(bound.count()) + " s");
  }

  asio::io_context& io() { return io_; }
  kiln::kube::Client& client() { return *client_; }
  const kiln::kube::ClusterConfig& config() const { return config_; }
  const Kubesim& sim() const { return sim_; }

 private:
  static std::vector<std::string> Flags(const Options& o, std::vector<std::string> extra) {
    std::vector<std::string> f = {"--kubelet", "simulate"};
    if (!o.tls) f.push_back("--plain");
    f.insert(f.end(), extra.begin(), extra.end());
    return f;
  }

  Kubesim sim_;
  asio::io_context io_;  // after sim_: destroyed first
  kiln::kube::ClusterConfig config_;
  std::unique_ptr<kiln::kube::Client> client_;
  std::vector<std::unique_ptr<std::vector<kiln::dag::Manifest>>> manifests_;
  kiln::dag::TemplateLibrary library_;
};

std::string PodTemplate(const std::string& duration) {
  return "  - name: pod\n"
         "    metadata:\n"
         "      annotations: {kubesim.kiln.dev/duration: \"" +
         duration +
         "\"}\n"
         "    container: {image: busybox, command: [\"true\"]}\n";
}

std::string FanoutYaml(int n) {
  return "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {name: fanout}\nspec:\n"
         "  entrypoint: main\n  templates:\n  - name: main\n    dag:\n      tasks:\n"
         "      - {name: fan, template: pod, withSequence: {count: \"" +
         std::to_string(n) + "\"}}\n" + PodTemplate("3600s");
}

std::string ChainYaml(const std::string& name, int n, const std::string& pod_duration) {
  std::string y = "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {name: " + name +
                  "}\nspec:\n"
                  "  entrypoint: main\n  templates:\n  - name: main\n    dag:\n      tasks:\n";
  for (int i = 0; i < n; ++i) {
    y += "      - {name: t" + std::to_string(i) + ", template: pod" +
         (i ? ", depends: t" + std::to_string(i - 1) : std::string()) + "}\n";
  }
  return y + PodTemplate(pod_duration);
}

std::string Transport(const Options& o) { return o.tls ? "HTTPS" : "HTTP"; }

std::string QpsText(double qps) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", qps);
  return buf;
}

const char* kFanoutHeader =
    "| steps | transport | qps/burst | creates/s first->last | of limit | steady creates/s (after "
    "burst) | "
    "creates/s 2nd / 4th quarter | all Running s | kiln CPU ms/step | kubesim CPU ms/step | RSS "
    "B/active step | "
    "heap B/active step | requests | 429s |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";

int Fanout(const Options& o) {
  const int n = o.steps ? o.steps : 5000;
  std::vector<Steady::time_point> creates;
  creates.reserve(static_cast<size_t>(n));
  kiln::kube::ClientOptions co;
  co.qps = o.qps;
  co.burst = o.burst;
  co.observe = [&creates](std::string_view method, int status) {
    if (method == "POST" && status == 201) creates.push_back(Steady::now());
  };
  const std::string history = std::to_string(30 * n + 1000);
  Bench bench(o, {"--watch-history", history}, co);
  sch::WorkflowState s = bench.NewState(FanoutYaml(n));
  kiln::executor::KubernetesStepRunner inner(bench.client(), bench.RunnerOptions(s, ""));
  TimedRunner runner(inner);

  malloc_trim(0);
  const size_t rss0 = RssBytes(), heap0 = HeapInUse();
  const double cpu0 = CpuSeconds(), sim_cpu0 = KubesimCpuSeconds();
  const Steady::time_point t0 = Steady::now();
  size_t rss1 = 0, heap1 = 0;
  double cpu1 = 0, sim_cpu1 = 0;
  // With qps 50 the creates alone take (N - burst) / 50 s.
  auto bound = std::chrono::seconds(120 + static_cast<int>(3.0 * n / std::max(1.0, o.qps)));
  bench.Run(s, runner, bound, [&] {
    if (runner.started() < n) return false;
    rss1 = RssBytes();
    heap1 = HeapInUse();
    cpu1 = CpuSeconds();
    sim_cpu1 = KubesimCpuSeconds();
    return true;
  });
  if (runner.started() < n) Die("the fan-out ended before every step ran");
  for (const auto& [node, t] : runner.times()) {
    if (t.finished) Die("step " + node + " finished during the fan-out");
  }
  if (static_cast<int>(creates.size()) != n) {
    Die("saw " + std::to_string(creates.size()) + " Job creates for " + std::to_string(n) +
        " steps");
  }
  const double window = Seconds(creates.front(), creates.back());
  const double rate = (n - 1) / window;
  const double ideal = std::max(0.0, (n - o.burst) / o.qps);
  char of_limit[32] = "- (within burst)";
  if (ideal > 0) std::snprintf(of_limit, sizeof of_limit, "%.0f%%", 100.0 * ideal / window);
  std::string steady = "-";
  if (n > o.burst + 1) {
    size_t k = static_cast<size_t>(o.burst);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.1f (%.0f%% of qps)",
                  (n - 1 - o.burst) / Seconds(creates[k], creates.back()),
                  100.0 * (n - 1 - o.burst) / Seconds(creates[k], creates.back()) / o.qps);
    steady = buf;
  }
  // Whether the rate holds as Jobs and pods accumulate.
  auto quarter_rate = [&](int q) {
    size_t a = static_cast<size_t>(q * n / 4), b = static_cast<size_t>((q + 1) * n / 4 - 1);
    return static_cast<double>(b - a) / Seconds(creates[a], creates[b]);
  };
  char sim_cpu[32] = "-";
  if (sim_cpu0 >= 0 && sim_cpu1 >= 0)
    std::snprintf(sim_cpu, sizeof sim_cpu, "%.2f", 1000.0 * (sim_cpu1 - sim_cpu0) / n);
  std::printf(
      "| %d | %s | %s/%d | %.1f | %s | %s | %.1f / %.1f | %.1f | %.2f | %s | %.0f | %.0f | %lld | "
      "%lld |\n",
      n, Transport(o).c_str(), QpsText(o.qps).c_str(), o.burst, rate, of_limit, steady.c_str(),
      quarter_rate(1), quarter_rate(3), Seconds(t0, runner.last_started()),
      1000.0 * (cpu1 - cpu0) / n, sim_cpu,
      (static_cast<double>(rss1) - static_cast<double>(rss0)) / n,
      (static_cast<double>(heap1) - static_cast<double>(heap0)) / n,
      static_cast<long long>(bench.client().requests_sent()),
      static_cast<long long>(bench.client().throttled()));
  std::fflush(stdout);
  return 0;
}

// A second watch of a workflow's Jobs, on its own client and thread: when each Job was ADDED and
// when it was first seen Complete, by job name; and the node each Job runs.
class JobWatcher {
 public:
  JobWatcher(const kiln::kube::ClusterConfig& config, const std::string& workflow) {
    kiln::kube::ClientOptions co;
    co.qps = 1000;
    co.burst = 1000;
    auto client = kiln::kube::Client::Create(io_, config, co);
    if (!client) Die("watch client: " + client.error().ToString());
    client_ = std::move(*client);
    auto synced = std::make_shared<std::promise<void>>();
    std::future<void> ready = synced->get_future();
    std::string selector =
        std::string(kiln::executor::kLabelWorkflow) + "=" + kiln::executor::LabelValue(workflow);
    watch_ = client_->StartWatch(
        "/apis/batch/v1/namespaces/default/jobs", selector,
        [this](const kiln::kube::WatchEvent& e) { OnEvent(e); },
        [synced, done = false](const std::vector<std::string>&) mutable {
          if (!done) synced->set_value();
          done = true;  // later relists (a reconnect) are not the first
        });
    thread_ = std::thread([this] { io_.run(); });
    // The runner creates nothing before the watch is open.
    if (ready.wait_for(std::chrono::seconds(30)) != std::future_status::ready)
      Die("the Job watch did not sync");
  }
  ~JobWatcher() {
    asio::post(io_, [this] {
      watch_->Stop();
      client_->Shutdown();
      io_.stop();
    });
    thread_.join();
  }

  struct Seen {
    std::string node;
    std::optional<Sys::time_point> complete;
  };
  // Waits (at most 30 s) until `jobs` Jobs were seen Complete, then returns what was seen.
  std::map<std::string, Seen> WaitComplete(size_t jobs) {
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait_for(lock, std::chrono::seconds(30), [&] { return complete_ >= jobs; });
    return seen_;
  }

 private:
  void OnEvent(const kiln::kube::WatchEvent& e) {
    const Sys::time_point now = Sys::now();
    const json& md = e.object.value("metadata", json::object());
    std::string name = md.value("name", "");
    std::string node = md.value("annotations", json::object())
                           .value(std::string(kiln::executor::kAnnotationNode), "");
    bool complete = false;
    const json& st = e.object.value("status", json::object());
    for (const json& c : st.value("conditions", json::array())) {
      complete = complete || (c.value("type", "") == "Complete" && c.value("status", "") == "True");
    }
    std::lock_guard<std::mutex> lock(mu_);
    Seen& s = seen_[name];
    s.node = node;
    if (complete && !s.complete) {
      s.complete = now;
      ++complete_;
      changed_.notify_all();
    }
  }

  asio::io_context io_;
  std::unique_ptr<kiln::kube::Client> client_;
  std::shared_ptr<kiln::kube::Watch> watch_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable changed_;
  std::map<std::string, Seen> seen_;  // GUARDED_BY(mu_)
  size_t complete_ = 0;               // GUARDED_BY(mu_)
};

// What kubesim's audit log says of one Job: when it was created, when its pods were listed and
// when a log of one of its pods was read.
struct AuditTimes {
  std::optional<Sys::time_point> create, list_pods, get_log;
};

std::map<std::string, AuditTimes> ReadAudit(const std::string& path,
                                            const std::vector<std::string>& jobs) {
  std::map<std::string, AuditTimes> out;
  std::ifstream in(path);
  std::string line;
  const std::string job_selector = "job-name%3D";
  while (std::getline(in, line)) {
    json e = json::parse(line, nullptr, false);
    if (e.is_discarded()) continue;
    auto at = ParseMicroTime(e.value("requestReceivedTimestamp", ""));
    if (!at) continue;
    const std::string verb = e.value("verb", "");
    const std::string uri = e.value("requestURI", "");
    const json& ref = e.value("objectRef", json::object());
    const std::string resource = ref.value("resource", "");
    if (verb == "create" && resource == "jobs") {
      auto& t = out[ref.value("name", "")];
      if (!t.create) t.create = at;
    } else if (verb == "list" && resource == "pods") {
      size_t k = uri.find(job_selector);
      if (k == std::string::npos) continue;
      std::string job = uri.substr(k + job_selector.size());
      job = job.substr(0, job.find('&'));
      auto& t = out[job];
      if (!t.list_pods) t.list_pods = at;
    } else if (verb == "get" && resource == "pods" && ref.value("subresource", "") == "log") {
      // Pod names are the Job's name and a suffix: the longest Job name that prefixes it.
      std::string pod = ref.value("name", ""), best;
      for (const std::string& j : jobs) {
        if (pod.rfind(j + "-", 0) == 0 && j.size() > best.size()) best = j;
      }
      if (best.empty()) continue;
      auto& t = out[best];
      if (!t.get_log) t.get_log = at;
    }
  }
  return out;
}

const char* kChainHeader =
    "| layers x runs | transport | qps/burst | log copy | Complete -> next create ms p50 / p99 / "
    "max | "
    "A->B watch to pod list p50 | B->C pod list p50 | C->D log read + copy p50 | A->D p50 | D->E "
    "controller p50 | "
    "E->F create p50 | wall ms/layer |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|\n";

int Chain(const Options& o) {
  const int n = o.steps ? o.steps : 100;
  TempDir scratch;
  const std::string audit = scratch / "audit.log";
  kiln::kube::ClientOptions co;
  co.qps = o.qps;
  co.burst = o.burst;
  Bench bench(o, {"--audit-log", audit}, co);
  std::vector<double> total, watch_to_list, list, log_copy, finish, controller, create;
  double wall_ms = 0;
  for (int r = 0; r < o.repeat; ++r) {
    const std::string name = "chain-" + std::to_string(r);
    sch::WorkflowState s = bench.NewState(ChainYaml(name, n, o.pod_duration));
    const std::string logs = o.log_copy ? scratch / ("logs-" + std::to_string(r)) : "";
    JobWatcher watcher(bench.config(), name);
    kiln::executor::KubernetesStepRunner inner(bench.client(), bench.RunnerOptions(s, logs));
    TimedRunner runner(inner);
    const Steady::time_point t0 = Steady::now();
    bench.Run(s, runner, std::chrono::seconds(60 + 2 * n), {});
    wall_ms += 1000.0 * Seconds(t0, Steady::now());
    if (s.phase != sch::Phase::kSucceeded) Die("chain " + name + " did not succeed");

    // Job and node of each layer, in order.
    auto seen = watcher.WaitComplete(static_cast<size_t>(n));
    std::map<std::string, std::string> job_of_node;
    std::vector<std::string> jobs;
    for (const auto& [job, seen_job] : seen) {
      job_of_node[seen_job.node] = job;
      jobs.push_back(job);
    }
    std::vector<std::string> nodes(static_cast<size_t>(n));
    for (const auto& [id, node] : s.nodes) {
      if (node.type != sch::NodeType::kPod) continue;
      int layer = std::stoi(node.name.substr(node.name.rfind('t') + 1));
      if (layer < 0 || layer >= n) Die("unexpected node " + node.name);
      nodes[static_cast<size_t>(layer)] = id;
    }
    auto audit_times = ReadAudit(audit, jobs);
    for (int i = 0; i + 1 < n; ++i) {
      const std::string& node = nodes[static_cast<size_t>(i)];
      const std::string& next = nodes[static_cast<size_t>(i + 1)];
      const std::string job = job_of_node[node], next_job = job_of_node[next];
      const auto& a = seen[job].complete;
      const auto& b = audit_times[job].list_pods;
      const auto& d = runner.times().at(node).finished;
      const auto& e = runner.times().at(next).launched;
      const auto& f = audit_times[next_job].create;
      // B is absent when the runner had the ended pod from its pod watch (no list needed).
      if (!a || !d || !e || !f) Die("layer " + std::to_string(i) + " of " + name + " lacks a time");
      const auto& c = audit_times[job].get_log;
      if (o.log_copy && !c) Die("no log read for Job " + job);
      if (b) watch_to_list.push_back(Ms(*a, *b));
      if (b && c) list.push_back(Ms(*b, *c));
      if (c) log_copy.push_back(Ms(*c, *d));
      total.push_back(Ms(*a, *f));
      finish.push_back(Ms(*a, *d));
      controller.push_back(Ms(*d, *e));
      create.push_back(Ms(*e, *f));
    }
  }
  auto p50_or_dash = [](const std::vector<double>& v) {
    char buf[32] = "-";
    if (!v.empty()) std::snprintf(buf, sizeof buf, "%.1f", Percentile(v, 0.5));
    return std::string(buf);
  };
  std::printf(
      "| %d x %d%s | %s | %s/%d | %s | %.1f / %.1f / %.1f | %s | %s | %s | %.1f | %.2f | %.1f | "
      "%.1f |\n",
      n, o.repeat, o.pod_duration == "0s" ? "" : (", pods " + o.pod_duration).c_str(), Transport(o).c_str(),
      QpsText(o.qps).c_str(), o.burst, o.log_copy ? "yes" : "no",
      Percentile(total, 0.5), Percentile(total, 0.99), Percentile(total, 1.0),
      p50_or_dash(watch_to_list).c_str(), p50_or_dash(list).c_str(), p50_or_dash(log_copy).c_str(),
      Percentile(finish, 0.5), Percentile(controller, 0.5), Percentile(create, 0.5),
      wall_ms / (o.repeat * n));
  std::fflush(stdout);
  return 0;
}

// Runs this program with `args` and prints the table rows it printed.
void Child(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"/proc/self/exe"};
  argv.insert(argv.end(), args.begin(), args.end());
  TempDir scratch;
  auto r = kiln::kubesim::testing::Run(argv, scratch.path());
  std::istringstream lines(r.output);
  std::string line;
  bool any = false;
  while (std::getline(lines, line)) {
    if (line.rfind("| ", 0) == 0) {
      std::printf("%s\n", line.c_str());
      any = true;
    }
  }
  std::fflush(stdout);
  if (r.exit_code != 0 || !any)
    Die("case failed (exit " + std::to_string(r.exit_code) + "):\n" + r.output);
}

Options ParseArgs(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) Die(a + " needs a value");
      return argv[++i];
    };
    if (a == "--case") {
      o.case_name = value();
    } else if (a == "--steps") {
      o.steps = std::stoi(value());
    } else if (a == "--qps") {
      o.qps = std::stod(value());
    } else if (a == "--burst") {
      o.burst = std::stoi(value());
    } else if (a == "--repeat") {
      o.repeat = std::stoi(value());
    } else if (a == "--no-log-copy") {
      o.log_copy = false;
    } else if (a == "--pod-duration") {
      o.pod_duration = value();
    } else if (a == "--tls") {
      o.tls = true;
    } else if (a == "--smoke") {
      o.smoke = true;
    } else {
      Die("unknown argument " + a + " (see the comment at the top of bench/kubernetes_bench.cc)");
    }
  }
  if (o.qps <= 0 || o.burst < 1 || o.repeat < 1 || o.steps < 0)
    Die("--qps, --burst, --repeat must be positive");
  if (!o.case_name.empty() && o.case_name != "fanout" && o.case_name != "chain")
    Die("unknown case " + o.case_name);
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  Options o = ParseArgs(argc, argv);
  if (o.smoke) {
    Options f = o;
    f.steps = 50;
    std::printf("%s", kFanoutHeader);
    Fanout(f);
    Options c = o;
    c.steps = 5;
    c.repeat = 1;
    std::printf("\n%s", kChainHeader);
    Chain(c);
    return 0;
  }
  if (o.case_name == "fanout") return Fanout(o);
  if (o.case_name == "chain") return Chain(o);
  std::printf("%s", kFanoutHeader);
  Child({"--case", "fanout"});
  Child({"--case", "fanout", "--qps", "200"});
  Child({"--case", "fanout", "--qps", "100000", "--burst", "100000"});
  Child({"--case", "fanout", "--qps", "200", "--tls"});
  std::printf("\n%s", kChainHeader);
  Child({"--case", "chain"});
  Child({"--case", "chain", "--no-log-copy"});
  // Pods that run longer than a link's requests take at 50/s: the bucket refills meanwhile.
  Child({"--case", "chain", "--pod-duration", "100ms"});
  Child({"--case", "chain", "--tls"});
  // Above, the chain's own requests (3 per layer) exceed 50/s: the rate limit is in the latency.
  Child({"--case", "chain", "--qps", "1000", "--burst", "1000"});
  Child({"--case", "chain", "--qps", "1000", "--burst", "1000", "--no-log-copy"});
  Child({"--case", "chain", "--qps", "1000", "--burst", "1000", "--tls"});
  return 0;
}
