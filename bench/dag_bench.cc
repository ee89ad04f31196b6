// Times the front half of kiln on large generated DAGs: parse (yaml-cpp + typed spec), validate,
// and expand + topological order; reports peak and retained memory per task.
//
//   dag_bench              runs 1k, 10k and 100k tasks, each in a child process (so peak RSS is
//                          per size), and prints a markdown table
//   dag_bench --n N        one size, one table row (what the children run)
//   dag_bench --yaml N     prints the generated workflow (the same as gen_layered_dag.py N)
//
// The workflow is the one bench/gen_layered_dag.py writes: one dag template of N tasks in layers
// of 100, each task depending on 1-3 tasks of the layer before with `depends: "a && b"` and
// passing one parent's output parameter to a script template.
#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "dag/graph.h"
#include "dag/internal/yaml_tree.h"
#include "dag/parse.h"
#include "dag/validate.h"

namespace {

using kiln::dag::Diagnostics;
using kiln::dag::Manifest;

// The same 64-bit LCG as gen_layered_dag.py, so both write byte-identical YAML.
struct Lcg {
  uint64_t state = 42;
  uint32_t Next() {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<uint32_t>(state >> 33);
  }
};

std::string TaskName(size_t layer, size_t i) {
  std::string name = "t";  // built by appends: GCC 12 warns falsely on "t" + std::to_string
  name += std::to_string(layer);
  name += '-';
  name += std::to_string(i);
  return name;
}

std::string GenerateLayeredDag(size_t n, size_t width = 100) {
  std::string y;
  y.reserve(n * 260 + 1024);
  y += "apiVersion: argoproj.io/v1alpha1\n"
       "kind: Workflow\n"
       "metadata:\n"
       "  generateName: layered-\n"
       "spec:\n"
       "  entrypoint: main\n"
       "  templates:\n"
       "  - name: main\n"
       "    dag:\n"
       "      tasks:\n";
  Lcg rng;
  for (size_t k = 0; k < n; ++k) {
    size_t layer = k / width;
    size_t i = k % width;
    y += "      - name: " + TaskName(layer, i) + "\n";
    std::string msg = "seed-" + std::to_string(i);
    if (layer > 0) {
      size_t prev_width = width;
      size_t parents = std::min<size_t>(1 + rng.Next() % 3, prev_width);
      std::vector<size_t> picked;
      while (picked.size() < parents) {
        size_t p = rng.Next() % prev_width;
        if (std::find(picked.begin(), picked.end(), p) == picked.end()) picked.push_back(p);
      }
      y += "        depends: \"";
      for (size_t j = 0; j < picked.size(); ++j) {
        if (j > 0) y += " && ";
        y += TaskName(layer - 1, picked[j]);
      }
      y += "\"\n";
      msg = "{{tasks." + TaskName(layer - 1, picked[0]) + ".outputs.parameters.out}}";
    }
    y += "        template: work\n"
         "        arguments:\n"
         "          parameters:\n"
         "          - name: msg\n"
         "            value: \"" + msg + "\"\n";
  }
  y += "  - name: work\n"
       "    inputs:\n"
       "      parameters:\n"
       "      - name: msg\n"
       "    outputs:\n"
       "      parameters:\n"
       "      - name: out\n"
       "        valueFrom:\n"
       "          path: /tmp/out\n"
       "    script:\n"
       "      image: python:3.12-alpine\n"
       "      command: [python]\n"
       "      source: |\n"
       "        msg = \"{{inputs.parameters.msg}}\"\n"
       "        open(\"/tmp/out\", \"w\").write(msg[:8] + \"-ok\")\n";
  return y;
}

using Clock = std::chrono::steady_clock;

double Ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// CPU time of this process in ms: unlike wall time, barely moved by other load on the machine.
double CpuNowMs() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Resident set size now, from /proc/self/statm (in bytes).
size_t ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  size_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

size_t PeakRssBytes() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<size_t>(ru.ru_maxrss) * 1024;
}

kiln::dag::ParseOptions BenchParseOptions() {
  kiln::dag::ParseOptions opts;
  opts.max_file_bytes = 1u << 30;
  opts.max_nodes = 100'000'000;
  return opts;
}

std::vector<Manifest> Parse(const std::string& yaml) {
  Diagnostics diags;
  std::vector<Manifest> ms = kiln::dag::ParseManifests("layered.yaml", yaml, BenchParseOptions(), diags);
  if (diags.has_errors() || ms.size() != 1) {
    std::fprintf(stderr, "parse failed: %s\n",
                 diags.items().empty() ? "no manifest" : diags.items()[0].ToString().c_str());
    std::exit(1);
  }
  return ms;
}

size_t ValidateErrors(const Manifest& m, const kiln::dag::TemplateLibrary& lib) {
  Diagnostics diags;
  kiln::dag::Validate(m, lib, diags);
  if (diags.has_errors()) {
    std::fprintf(stderr, "validate: %s\n", diags.items()[0].ToString().c_str());
  }
  return diags.error_count();
}

size_t ExpandAndOrder(const Manifest& m, const kiln::dag::TemplateLibrary& lib,
                      size_t* graph_bytes = nullptr, size_t* nodes = nullptr) {
  kiln::Result<kiln::dag::Graph> g = kiln::dag::ExpandWorkflow(m, lib, {});
  if (!g) {
    std::fprintf(stderr, "expand failed: %s\n", g.error().ToString().c_str());
    std::exit(1);
  }
  std::vector<uint32_t> order = g->TopologicalOrder();
  if (graph_bytes != nullptr) *graph_bytes = g->MemoryBytes();
  if (nodes != nullptr) *nodes = g->size();
  return order.size();
}

int RunOne(size_t n) {
  const int runs = n >= 100'000 ? 3 : 5;
  const kiln::dag::TemplateLibrary lib;

  // Memory retained by the parsed spec, beyond the YAML text: RSS after parsing with the text
  // freed, minus RSS before the text existed.
  malloc_trim(0);
  const size_t rss_before = ResidentBytes();
  std::string yaml = GenerateLayeredDag(n);
  const size_t yaml_bytes = yaml.size();
  std::vector<Manifest> kept = Parse(yaml);
  std::string().swap(yaml);
  malloc_trim(0);
  const size_t rss_parsed = ResidentBytes();
  kept.clear();
  kept.shrink_to_fit();
  malloc_trim(0);

  yaml = GenerateLayeredDag(n);
  std::vector<double> parse_ms, validate_ms, expand_ms, total_ms;
  std::vector<double> parse_cpu, validate_cpu, expand_cpu, total_cpu;
  std::vector<Manifest> last;
  size_t validate_errors = 0;
  for (int r = 0; r < runs; ++r) {
    last.clear();
    auto t0 = Clock::now();
    double c0 = CpuNowMs();
    std::vector<Manifest> ms = Parse(yaml);
    auto t1 = Clock::now();
    double c1 = CpuNowMs();
    validate_errors = ValidateErrors(ms.front(), lib);
    auto t2 = Clock::now();
    double c2 = CpuNowMs();
    ExpandAndOrder(ms.front(), lib);
    auto t3 = Clock::now();
    double c3 = CpuNowMs();
    parse_ms.push_back(Ms(t0, t1));
    validate_ms.push_back(Ms(t1, t2));
    expand_ms.push_back(Ms(t2, t3));
    total_ms.push_back(Ms(t0, t3));
    parse_cpu.push_back(c1 - c0);
    validate_cpu.push_back(c2 - c1);
    expand_cpu.push_back(c3 - c2);
    total_cpu.push_back(c3 - c0);
    last = std::move(ms);
  }
  // Expansion alone again over parsed manifests, without the allocator churn of a parse beside it.
  std::vector<double> expand_only_ms;
  size_t graph_bytes = 0, nodes = 0;
  for (int r = 0; r < runs; ++r) {
    auto t0 = Clock::now();
    ExpandAndOrder(last.front(), lib, &graph_bytes, &nodes);
    expand_only_ms.push_back(Ms(t0, Clock::now()));
  }

  std::printf("| %zu | %.1f | %.1f / %.1f | %.1f / %.1f | %.2f / %.2f | %.1f / %.1f | %zu | %.0f | %.0f | %.0f |%s\n", n,
              yaml_bytes / 1024.0 / 1024.0, Median(parse_ms), Median(parse_cpu), Median(validate_ms),
              Median(validate_cpu), Median(expand_ms), Median(expand_cpu), Median(total_ms),
              Median(total_cpu), nodes,
              static_cast<double>(graph_bytes) / nodes,
              (static_cast<double>(rss_parsed) - static_cast<double>(rss_before)) / n,
              PeakRssBytes() / 1024.0 / 1024.0,
              validate_errors > 0 ? " (validate reported errors)" : "");
  return 0;
}

}  // namespace

// The same 10k-task manifest through yaml-cpp (the first parser kiln used) and through kiln's
// libyaml-based tree: why dag/ reads YAML with libyaml.
int CompareYamlLibraries() {
  std::string yaml = GenerateLayeredDag(10'000);
  std::vector<double> cpp_wall, cpp_cpu, lib_wall, lib_cpu;
  for (int r = 0; r < 5; ++r) {
    auto t0 = Clock::now();
    double c0 = CpuNowMs();
    { std::vector<YAML::Node> docs = YAML::LoadAll(yaml); }
    cpp_wall.push_back(Ms(t0, Clock::now()));
    cpp_cpu.push_back(CpuNowMs() - c0);
    Diagnostics d;
    t0 = Clock::now();
    c0 = CpuNowMs();
    { auto tree = kiln::dag::yaml::Tree::Parse("l.yaml", yaml, {}, d); }
    lib_wall.push_back(Ms(t0, Clock::now()));
    lib_cpu.push_back(CpuNowMs() - c0);
  }
  std::puts("| YAML reader, 10k-task manifest (1.9 MiB) | ms wall | ms cpu |");
  std::puts("|---|---|---|");
  std::printf("| yaml-cpp 0.7 YAML::LoadAll (build + free the node tree) | %.1f | %.1f |\n", Median(cpp_wall), Median(cpp_cpu));
  std::printf("| libyaml 0.2.5 events -> kiln yaml::Tree (build + free) | %.1f | %.1f |\n", Median(lib_wall), Median(lib_cpu));
  return 0;
}

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "--yaml") {
    std::fputs(GenerateLayeredDag(std::stoul(argv[2])).c_str(), stdout);
    return 0;
  }
  if (argc == 2 && std::string(argv[1]) == "--yaml-libraries") return CompareYamlLibraries();
  std::puts("| tasks | YAML MiB | parse ms wall / cpu | validate ms wall / cpu | expand+topo ms wall / cpu "
            "| total ms wall / cpu | graph nodes | graph B/node | retained B/task after parse | peak RSS MiB |");
  std::puts("|---|---|---|---|---|---|---|---|---|---|");
  std::fflush(stdout);
  if (argc == 3 && std::string(argv[1]) == "--n") return RunOne(std::stoul(argv[2]));
  // One child per size, so each row's peak RSS is its own.
  int rc = 0;
  for (size_t n : {1'000, 10'000, 100'000}) {
    std::string cmd = "/proc/" + std::to_string(getpid()) + "/exe --n " + std::to_string(n) +
                      " | tail -n 1";
    rc |= std::system(cmd.c_str());
  }
  return rc == 0 ? 0 : 1;
}
