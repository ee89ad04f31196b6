// Times the pure controller (scheduler/controller.h) with a null executor: every LaunchStep is
// answered at once with StepStarted and StepFinished (exit 0, one output parameter), so no
// process runs and the figures are the controller's own cost per event.
//
//   scheduler_bench                   runs the standard matrix, each case in a child process (so
//                                     peak RSS is per case), and prints a markdown table
//   scheduler_bench --case NAME N     one case, one table row (what the children run):
//                                       fanout   a dag task with withSequence count N, then a join
//                                       flat     a dag of N independent tasks
//                                       layered  bench/gen_layered_dag.py N (layers of 100)
//   scheduler_bench --file F          one row for the Workflow in F (its output parameters are
//                                     answered with "x")
//   --max-seconds S                   stop a case after S seconds of wall time and report the
//                                     rate so far and how far it got (default 120)
//   --yaml NAME N                     prints the manifest a case runs
//
// Figures: "transitions" are Decide+Apply pairs (one per event, as the driver records them),
// "node changes" the NodeState values those transitions carry. CPU time from getrusage. Memory:
// heap in use (mallinfo2: uordblks + hblkhd) once the workflow finished, minus before
// NewWorkflow, divided by the nodes in the final state; peak heap sampled every 256 events (the
// sampling's own time is not counted in wall, cpu or the rates).
#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "dag/parse.h"
#include "dag/validate.h"
#include "scheduler/controller.h"

namespace {

namespace sch = kiln::scheduler;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

double CpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

size_t PeakRssBytes() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<size_t>(ru.ru_maxrss) * 1024;
}

size_t HeapInUse() {
  struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

const char* kWork =
    "  - name: work\n"
    "    inputs:\n"
    "      parameters:\n"
    "      - name: msg\n"
    "    outputs:\n"
    "      parameters:\n"
    "      - name: out\n"
    "        valueFrom:\n"
    "          path: /tmp/out\n"
    "    container:\n"
    "      image: busybox\n"
    "      command: [sh, -c, \"echo {{inputs.parameters.msg}} > /tmp/out\"]\n";

std::string Header(const char* name) {
  return std::string("apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata:\n  name: ") + name +
         "\nspec:\n  entrypoint: main\n  templates:\n  - name: main\n    dag:\n      tasks:\n";
}

// One task fanned out N ways by withSequence, and a join that reads the aggregated outputs.
std::string FanoutYaml(size_t n) {
  return Header("fanout") +
         "      - name: fan\n"
         "        template: work\n"
         "        withSequence: {count: \"" + std::to_string(n) + "\"}\n"
         "        arguments: {parameters: [{name: msg, value: \"{{item}}\"}]}\n"
         "      - name: join\n"
         "        depends: fan\n"
         "        template: work\n"
         "        arguments: {parameters: [{name: msg, value: \"{{tasks.fan.outputs.parameters.out}}\"}]}\n" +
         kWork;
}

// N tasks without dependencies in one dag.
std::string FlatDagYaml(size_t n) {
  std::string y = Header("flat");
  for (size_t i = 0; i < n; ++i) {
    y += "      - {name: t" + std::to_string(i) + ", template: work, arguments: {parameters: [{name: msg, value: \"" +
         std::to_string(i) + "\"}]}}\n";
  }
  return y + kWork;
}

std::string LayeredYaml(size_t n) {
  std::string path = "/tmp/scheduler_bench_layered_" + std::to_string(getpid()) + ".yaml";
  std::string cmd = "python3 " KILN_BENCH_DIR "/gen_layered_dag.py " + std::to_string(n) + " -o " + path;
  if (std::system(cmd.c_str()) != 0) {
    std::fprintf(stderr, "failed: %s\n", cmd.c_str());
    std::exit(1);
  }
  std::ifstream in(path);
  std::stringstream buf;
  buf << in.rdbuf();
  std::remove(path.c_str());
  return buf.str();
}

std::string CaseYaml(const std::string& name, size_t n) {
  if (name == "fanout") return FanoutYaml(n);
  if (name == "flat") return FlatDagYaml(n);
  if (name == "layered") return LayeredYaml(n);
  std::fprintf(stderr, "unknown case %s (fanout, flat, layered)\n", name.c_str());
  std::exit(2);
}

std::string ReadFileOrDie(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    std::fprintf(stderr, "cannot read %s\n", path.c_str());
    std::exit(1);
  }
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

int RunOne(const std::string& label, const std::string& yaml, double max_seconds) {
  kiln::dag::ParseOptions opts;
  opts.max_file_bytes = 1u << 30;
  opts.max_nodes = 100'000'000;
  kiln::dag::Diagnostics diags;
  std::vector<kiln::dag::Manifest> ms = kiln::dag::ParseManifests("bench.yaml", yaml, opts, diags);
  if (diags.has_errors() || ms.empty()) {
    std::fprintf(stderr, "parse failed: %s\n", diags.items().empty() ? "no manifest" : diags.items()[0].ToString().c_str());
    return 1;
  }
  kiln::dag::TemplateLibrary library;
  for (const auto& m : ms) library.Add(m);
  const kiln::dag::Manifest& wf = ms.back();

  malloc_trim(0);
  const size_t heap_before = HeapInUse();
  const size_t rss_before = PeakRssBytes();
  auto state = sch::NewWorkflow(wf, library, "uid-bench", {});
  if (!state) {
    std::fprintf(stderr, "NewWorkflow: %s\n", state.error().message().c_str());
    return 1;
  }

  const sch::Time now = sch::Time{} + std::chrono::hours(24 * 365 * 56);
  std::deque<sch::Event> events;
  events.push_back(sch::StartWorkflow{});
  size_t transitions = 0, node_changes = 0, launches = 0, finished_steps = 0;
  size_t peak_heap = heap_before;
  double decide_s = 0, apply_s = 0, sample_cpu = 0, sample_wall = 0;
  bool timed_out = false;
  const auto t0 = Clock::now();
  const double c0 = CpuSeconds();
  while (!events.empty()) {
    sch::Event e = std::move(events.front());
    events.pop_front();
    const auto d0 = Clock::now();
    sch::Transition t = sch::Decide(*state, library, e, now);
    const auto d1 = Clock::now();
    sch::Apply(*state, t);
    const auto d2 = Clock::now();
    decide_s += Seconds(d0, d1);
    apply_s += Seconds(d1, d2);
    ++transitions;
    node_changes += t.nodes.size();
    if (std::holds_alternative<sch::StepFinished>(e)) ++finished_steps;
    for (const sch::Action& a : t.actions) {
      const auto* l = std::get_if<sch::LaunchStep>(&a);
      if (l == nullptr) continue;
      ++launches;
      events.push_back(sch::StepStarted{l->node});
      sch::StepFinished f;
      f.node = l->node;
      f.exit_code = 0;
      if (l->tmpl != nullptr) {
        for (const auto& p : l->tmpl->outputs.parameters) f.outputs[p.name] = "x";
      }
      events.push_back(std::move(f));
    }
    if ((transitions & 255) == 0) {
      // mallinfo2 walks the heap: its own cost is measured and left out of the figures.
      const double s0 = CpuSeconds();
      const auto w0 = Clock::now();
      peak_heap = std::max(peak_heap, HeapInUse());
      sample_cpu += CpuSeconds() - s0;
      sample_wall += Seconds(w0, Clock::now());
      if (Seconds(t0, Clock::now()) > max_seconds) {
        timed_out = true;
        break;
      }
    }
  }
  const double wall = Seconds(t0, Clock::now()) - sample_wall;
  const double cpu = CpuSeconds() - c0 - sample_cpu;
  const size_t heap_after = HeapInUse();
  peak_heap = std::max(peak_heap, heap_after);
  const size_t nodes = state->nodes.size();
  const double retained = (static_cast<double>(heap_after) - static_cast<double>(heap_before)) / nodes;
  const double peak = (static_cast<double>(peak_heap) - static_cast<double>(heap_before)) / nodes;
  std::string phase = timed_out ? "stopped after " + std::to_string(static_cast<int>(max_seconds)) + " s"
                                : std::string(sch::PhaseName(state->phase));
  std::printf("| %s | %s | %zu | %zu | %zu | %.2f / %.2f | %.0f | %.0f | %.1f / %.1f | %.0f | %.0f | %.0f |\n",
              label.c_str(), phase.c_str(), finished_steps, nodes, transitions, wall, cpu,
              transitions / cpu, node_changes / cpu, decide_s, apply_s, retained, peak,
              (static_cast<double>(PeakRssBytes()) - static_cast<double>(rss_before)) / 1024.0 / 1024.0);
  std::fflush(stdout);
  return 0;
}

void PrintHeader() {
  std::puts("| case | workflow phase | steps finished | nodes | transitions | wall / cpu s | transitions/s (cpu) "
            "| node changes/s (cpu) | Decide / Apply s | retained B/node | peak heap B/node | peak RSS delta MiB |");
  std::puts("|---|---|---|---|---|---|---|---|---|---|---|---|");
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  double max_seconds = 120;
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] == "--max-seconds") {
      max_seconds = std::stod(args[i + 1]);
      args.erase(args.begin() + i, args.begin() + i + 2);
      break;
    }
  }
  // The children of the matrix print rows only; the parent printed the header.
  bool header = true;
  if (!args.empty() && args[0] == "--no-header") {
    header = false;
    args.erase(args.begin());
  }
  if (args.size() == 3 && args[0] == "--yaml") {
    std::fputs(CaseYaml(args[1], std::stoul(args[2])).c_str(), stdout);
    return 0;
  }
  if (args.size() == 3 && args[0] == "--case") {
    if (header) PrintHeader();
    std::string yaml = CaseYaml(args[1], std::stoul(args[2]));
    return RunOne(args[1] + " " + args[2], yaml, max_seconds);
  }
  if (args.size() == 2 && args[0] == "--file") {
    if (header) PrintHeader();
    return RunOne(args[1], ReadFileOrDie(args[1]), max_seconds);
  }
  if (!args.empty()) {
    std::fprintf(stderr, "usage: scheduler_bench [--max-seconds S] [--case fanout|flat|layered N | --file F | --yaml CASE N]\n");
    return 2;
  }
  PrintHeader();
  // One child per case, so each row's peak RSS is its own.
  int rc = 0;
  const std::pair<const char*, size_t> cases[] = {
      {"fanout", 1'000}, {"fanout", 10'000}, {"flat", 1'000}, {"flat", 10'000},
      {"layered", 1'000}, {"layered", 10'000}, {"layered", 100'000}};
  for (const auto& [name, n] : cases) {
    std::string cmd = "/proc/" + std::to_string(getpid()) + "/exe --max-seconds " +
                      std::to_string(static_cast<int>(max_seconds)) + " --no-header --case " + name + " " + std::to_string(n);
    rc |= std::system(cmd.c_str());
  }
  return rc == 0 ? 0 : 1;
}
