// logreg-gpu: trains a logistic-regression model by full-batch gradient descent on an NVIDIA GPU,
// the GPU step of examples/workflows/gpu-train.yaml.
//
//   logreg-gpu --data train.csv --epochs 300 --learning-rate 0.5 --model model.json
//              --metrics metrics.json
//
// train.csv: one sample a line, "label,x1,...,xD" (label 0 or 1, D <= 32, no header).
// Each epoch is two kernels: every block sums the gradient, loss and correct predictions of its
// share of the samples (a shared-memory tree reduction), then one small kernel adds the blocks'
// partial sums in a fixed order and takes the step. The block count depends only on the number
// of samples, so a run is deterministic for a given input. The final loss is recomputed on the
// CPU in double precision as a check of the GPU's arithmetic.
//
// Exit status: 0 on success; 1 for bad arguments or input; 2 when no CUDA device can be used
// (no GPU, no driver, or CUDA_VISIBLE_DEVICES hiding every GPU), with the CUDA error on stderr.
#include <cuda_runtime.h>
#include <dlfcn.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

constexpr int kThreads = 256;
constexpr int kMaxFeatures = 32;
constexpr int kMaxBlocks = 240;
// Per block: gradient of the bias and of each weight, then loss, then correct predictions.
constexpr int kSlots = kMaxFeatures + 3;

struct Flags {
  std::string data;
  std::string model = "model.json";
  std::string metrics = "metrics.json";
  int epochs = 300;
  double learning_rate = 0.5;
};

struct Dataset {
  int n = 0;
  int d = 0;
  std::vector<float> x;  // n x d, row-major
  std::vector<float> y;  // n labels, 0 or 1
};

[[noreturn]] void Die(int code, const std::string& message) {
  std::fprintf(stderr, "logreg-gpu: %s\n", message.c_str());
  std::exit(code);
}

void CheckCuda(cudaError_t status, const char* call) {
  if (status != cudaSuccess) {
    Die(2, std::string(call) + " failed: " + cudaGetErrorString(status) + " (" +
               cudaGetErrorName(status) + ")");
  }
}

Flags ParseFlags(int argc, char** argv) {
  Flags f;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::printf(
          "usage: logreg-gpu --data FILE [--epochs N] [--learning-rate R] [--model FILE] "
          "[--metrics FILE]\n");
      std::exit(0);
    }
    if (i + 1 >= argc) Die(1, arg + ": expected a value (see --help)");
    std::string value = argv[++i];
    char* end = nullptr;
    errno = 0;
    if (arg == "--data") {
      f.data = value;
    } else if (arg == "--model") {
      f.model = value;
    } else if (arg == "--metrics") {
      f.metrics = value;
    } else if (arg == "--epochs") {
      long v = std::strtol(value.c_str(), &end, 10);
      if (errno != 0 || *end != '\0' || v < 1 || v > 1000000) {
        Die(1, "--epochs: \"" + value + "\" is not a number of epochs in [1, 1000000]");
      }
      f.epochs = static_cast<int>(v);
    } else if (arg == "--learning-rate") {
      double v = std::strtod(value.c_str(), &end);
      if (errno != 0 || *end != '\0' || !(v > 0) || !std::isfinite(v)) {
        Die(1, "--learning-rate: \"" + value + "\" is not a positive number");
      }
      f.learning_rate = v;
    } else {
      Die(1, "unknown flag " + arg + " (see --help)");
    }
  }
  if (f.data.empty()) Die(1, "--data FILE is required (see --help)");
  return f;
}

Dataset ReadCsv(const std::string& path) {
  std::ifstream in(path);
  if (!in) Die(1, "cannot read " + path + ": " + std::strerror(errno));
  Dataset ds;
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty()) continue;
    std::vector<float> fields;
    const char* p = line.c_str();
    while (true) {
      char* end = nullptr;
      float v = std::strtof(p, &end);
      if (end == p) Die(1, path + ":" + std::to_string(line_no) + ": expected a number");
      fields.push_back(v);
      p = end;
      if (*p == '\0' || *p == '\r') break;
      if (*p != ',') Die(1, path + ":" + std::to_string(line_no) + ": expected ','");
      ++p;
    }
    int d = static_cast<int>(fields.size()) - 1;
    if (d < 1 || d > kMaxFeatures) {
      Die(1, path + ":" + std::to_string(line_no) + ": expected a label and 1 to " +
                 std::to_string(kMaxFeatures) + " features");
    }
    if (ds.d == 0) ds.d = d;
    if (d != ds.d) {
      Die(1, path + ":" + std::to_string(line_no) + ": " + std::to_string(d) +
                 " features, but the first line has " + std::to_string(ds.d));
    }
    if (fields[0] != 0.0f && fields[0] != 1.0f) {
      Die(1, path + ":" + std::to_string(line_no) + ": the label must be 0 or 1");
    }
    ds.y.push_back(fields[0]);
    ds.x.insert(ds.x.end(), fields.begin() + 1, fields.end());
    ++ds.n;
  }
  if (ds.n == 0) Die(1, path + ": no samples");
  return ds;
}

__device__ float Sigmoid(float z) { return 1.0f / (1.0f + expf(-z)); }

// partials[block * kSlots + k]: this block's sums over its samples of the gradient (k <= d),
// the log loss (k = d + 1) and the correct predictions (k = d + 2), at weights `w` (w[0]: bias).
__global__ void PartialSums(const float* x, const float* y, int n, int d, const float* w,
                            double* partials) {
  __shared__ double scratch[kThreads];
  double acc[kSlots];
  for (int k = 0; k < d + 3; ++k) acc[k] = 0.0;
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    const float* xi = x + static_cast<size_t>(i) * d;
    float z = w[0];
    for (int j = 0; j < d; ++j) z += w[j + 1] * xi[j];
    float p = Sigmoid(z);
    float g = p - y[i];
    acc[0] += g;
    for (int j = 0; j < d; ++j) acc[j + 1] += g * xi[j];
    float pc = fminf(fmaxf(p, 1e-7f), 1.0f - 1e-7f);
    acc[d + 1] += -(y[i] * logf(pc) + (1.0f - y[i]) * logf(1.0f - pc));
    acc[d + 2] += ((p >= 0.5f) == (y[i] >= 0.5f)) ? 1.0 : 0.0;
  }
  for (int k = 0; k < d + 3; ++k) {
    scratch[threadIdx.x] = acc[k];
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
      if (threadIdx.x < stride) scratch[threadIdx.x] += scratch[threadIdx.x + stride];
      __syncthreads();
    }
    if (threadIdx.x == 0) partials[blockIdx.x * kSlots + k] = scratch[0];
    __syncthreads();
  }
}

// One thread per slot: adds the blocks' partial sums in block order, records the epoch's loss
// and accuracy in stats[epoch * 2 ...], and moves the weights down the mean gradient.
__global__ void Step(const double* partials, int blocks, int n, int d, float learning_rate,
                     float* w, double* stats, int epoch) {
  int k = threadIdx.x;
  if (k >= d + 3) return;
  double sum = 0.0;
  for (int b = 0; b < blocks; ++b) sum += partials[b * kSlots + k];
  if (k <= d) {
    w[k] -= learning_rate * static_cast<float>(sum / n);
  } else {
    stats[epoch * 2 + (k - d - 1)] = sum / n;  // loss, then accuracy
  }
}

double CpuLoss(const Dataset& ds, const std::vector<float>& w) {
  double loss = 0.0;
  for (int i = 0; i < ds.n; ++i) {
    double z = w[0];
    for (int j = 0; j < ds.d; ++j) z += double{w[j + 1]} * ds.x[static_cast<size_t>(i) * ds.d + j];
    double p = std::clamp(1.0 / (1.0 + std::exp(-z)), 1e-7, 1.0 - 1e-7);
    loss += -(ds.y[i] * std::log(p) + (1.0 - ds.y[i]) * std::log(1.0 - p));
  }
  return loss / ds.n;
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) continue;
    out += c;
  }
  return out + "\"";
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  if (!out) Die(1, "cannot write " + path + ": " + std::strerror(errno));
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags = ParseFlags(argc, argv);

  int devices = 0;
  cudaError_t status = cudaGetDeviceCount(&devices);
  if (status != cudaSuccess || devices == 0) {
    const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
    std::string why = status != cudaSuccess
                          ? std::string("cudaGetDeviceCount failed: ") +
                                cudaGetErrorString(status) + " (" + cudaGetErrorName(status) + ")"
                          : std::string("cudaGetDeviceCount found 0 devices");
    // The runtime says "driver version is insufficient" when there is no driver at all.
    const bool driver = dlopen("libcuda.so.1", RTLD_LAZY) != nullptr;
    Die(2,
        "no usable CUDA device: " + why + "; this program needs an NVIDIA GPU and its driver" +
            (driver ? "" : " (the driver library libcuda.so.1 was not found)") +
            "; CUDA_VISIBLE_DEVICES=" + (visible ? "\"" + std::string(visible) + "\"" : "unset"));
  }
  cudaDeviceProp prop{};
  CheckCuda(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
  CheckCuda(cudaSetDevice(0), "cudaSetDevice");

  Dataset ds = ReadCsv(flags.data);
  const int d = ds.d;
  const int blocks = std::min(kMaxBlocks, (ds.n + kThreads - 1) / kThreads);
  std::printf(
      "device 0: %s (compute capability %d.%d, %d SMs); %d samples x %d features, %d "
      "epochs, learning rate %g\n",
      prop.name, prop.major, prop.minor, prop.multiProcessorCount, ds.n, d, flags.epochs,
      flags.learning_rate);

  float* x = nullptr;
  float* y = nullptr;
  float* w = nullptr;
  double* partials = nullptr;
  double* stats = nullptr;
  CheckCuda(cudaMalloc(&x, ds.x.size() * sizeof(float)), "cudaMalloc");
  CheckCuda(cudaMalloc(&y, ds.y.size() * sizeof(float)), "cudaMalloc");
  CheckCuda(cudaMalloc(&w, (d + 1) * sizeof(float)), "cudaMalloc");
  CheckCuda(cudaMalloc(&partials, static_cast<size_t>(blocks) * kSlots * sizeof(double)),
            "cudaMalloc");
  CheckCuda(cudaMalloc(&stats, static_cast<size_t>(flags.epochs) * 2 * sizeof(double)),
            "cudaMalloc");
  CheckCuda(cudaMemcpy(x, ds.x.data(), ds.x.size() * sizeof(float), cudaMemcpyHostToDevice),
            "cudaMemcpy");
  CheckCuda(cudaMemcpy(y, ds.y.data(), ds.y.size() * sizeof(float), cudaMemcpyHostToDevice),
            "cudaMemcpy");
  CheckCuda(cudaMemset(w, 0, (d + 1) * sizeof(float)), "cudaMemset");

  cudaEvent_t start, stop;
  CheckCuda(cudaEventCreate(&start), "cudaEventCreate");
  CheckCuda(cudaEventCreate(&stop), "cudaEventCreate");
  CheckCuda(cudaEventRecord(start), "cudaEventRecord");
  for (int epoch = 0; epoch < flags.epochs; ++epoch) {
    PartialSums<<<blocks, kThreads>>>(x, y, ds.n, d, w, partials);
    Step<<<1, 64>>>(partials, blocks, ds.n, d, static_cast<float>(flags.learning_rate), w, stats,
                    epoch);
  }
  CheckCuda(cudaGetLastError(), "kernel launch");
  CheckCuda(cudaEventRecord(stop), "cudaEventRecord");
  CheckCuda(cudaEventSynchronize(stop), "cudaEventSynchronize");
  float gpu_ms = 0;
  CheckCuda(cudaEventElapsedTime(&gpu_ms, start, stop), "cudaEventElapsedTime");

  std::vector<float> weights(d + 1);
  std::vector<double> history(static_cast<size_t>(flags.epochs) * 2);
  CheckCuda(cudaMemcpy(weights.data(), w, weights.size() * sizeof(float), cudaMemcpyDeviceToHost),
            "cudaMemcpy");
  CheckCuda(
      cudaMemcpy(history.data(), stats, history.size() * sizeof(double), cudaMemcpyDeviceToHost),
      "cudaMemcpy");
  for (void* p : {static_cast<void*>(x), static_cast<void*>(y), static_cast<void*>(w),
                  static_cast<void*>(partials), static_cast<void*>(stats)}) {
    cudaFree(p);
  }

  // The history holds the loss before each step; the CPU recomputes the loss after the last.
  const double cpu_final_loss = CpuLoss(ds, weights);
  std::ostringstream model;
  model.precision(9);
  model << "{\"bias\": " << weights[0] << ", \"weights\": [";
  for (int j = 1; j <= d; ++j) model << (j > 1 ? ", " : "") << weights[j];
  model << "]}\n";
  WriteFile(flags.model, model.str());

  std::ostringstream metrics;
  metrics.precision(6);
  metrics << "{\"device\": " << JsonString(prop.name) << ", \"compute_capability\": \""
          << prop.major << "." << prop.minor << "\", \"samples\": " << ds.n
          << ", \"features\": " << d << ", \"epochs\": " << flags.epochs
          << ", \"learning_rate\": " << flags.learning_rate << ", \"blocks\": " << blocks
          << ", \"threads_per_block\": " << kThreads << ", \"gpu_ms\": " << gpu_ms
          << ", \"loss_first\": " << history[0]
          << ", \"loss_last_epoch\": " << history[(flags.epochs - 1) * 2]
          << ", \"train_accuracy\": " << history[(flags.epochs - 1) * 2 + 1]
          << ", \"cpu_final_loss\": " << cpu_final_loss << ", \"loss_curve\": [";
  const int every = std::max(1, flags.epochs / 10);
  bool first = true;
  for (int e = 0; e < flags.epochs; e += every) {
    metrics << (first ? "" : ", ") << "[" << e << ", " << history[e * 2] << "]";
    first = false;
  }
  metrics << "]}\n";
  WriteFile(flags.metrics, metrics.str());

  std::printf(
      "loss %.4f -> %.4f (CPU check after the last step: %.4f), train accuracy %.4f, "
      "%.2f ms on the GPU for %d epochs\n",
      history[0], history[(flags.epochs - 1) * 2], cpu_final_loss,
      history[(flags.epochs - 1) * 2 + 1], gpu_ms, flags.epochs);
  return 0;
}
