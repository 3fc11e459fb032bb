// Tensor storage, views, copies and dtype conversion; the CPU allocator.
#include "difftx/core/tensor.h"

#include <fmt/ranges.h>
#include <unistd.h>

#include <array>
#include <cstdlib>
#include <cstring>

namespace difftx {

std::size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return 4;
    case DType::f64:
      return 8;
    case DType::bf16:
      return 2;
    case DType::i32:
      return 4;
  }
  return 0;
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return "f32";
    case DType::f64:
      return "f64";
    case DType::bf16:
      return "bf16";
    case DType::i32:
      return "i32";
  }
  return "?";
}

const char* device_name(Device device) {
  return device == Device::cpu ? "cpu" : "cuda";
}

std::string shape_string(const Shape& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

std::int64_t shape_numel(const Shape& shape) {
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

namespace {

class CpuAllocator final : public DeviceAllocator {
 public:
  // 64-byte aligned; from one page up, whole pages of their own, so that a backend may page-lock
  // a tensor's memory (Backend::pin_host) without touching another's.
  void* allocate(std::size_t bytes) override {
    constexpr std::size_t kPage = 4096;
    const std::size_t align = bytes >= kPage ? kPage : 64;
    const std::size_t rounded = (bytes + align - 1) / align * align;
    void* p = std::aligned_alloc(align, rounded == 0 ? 64 : rounded);
    if (!p) fail("out of host memory allocating {} bytes", bytes);
    return p;
  }
  void deallocate(void* ptr) override { std::free(ptr); }
  void copy(void* dst, Device, const void* src, Device, std::size_t bytes) override {
    if (bytes) std::memcpy(dst, src, bytes);
  }
  // Physical memory of the host.
  std::uint64_t capacity_bytes() const override {
    const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? std::uint64_t(pages) * std::uint64_t(page) : 0;
  }
};

std::array<DeviceAllocator*, 2>& allocators() {
  static CpuAllocator cpu;
  static std::array<DeviceAllocator*, 2> table{&cpu, nullptr};
  return table;
}

}  // namespace

void register_allocator(Device device, DeviceAllocator* allocator) {
  allocators()[static_cast<int>(device)] = allocator;
}

std::uint64_t device_capacity_bytes(Device device) {
  const DeviceAllocator* a = allocators()[static_cast<int>(device)];
  return a ? a->capacity_bytes() : 0;
}

DeviceAllocator& allocator_for(Device device) {
  DeviceAllocator* a = allocators()[static_cast<int>(device)];
  if (!a) fail("no {} backend in this build (rebuild with the cuda preset)", device_name(device));
  return *a;
}

struct Tensor::Storage {
  void* ptr = nullptr;
  std::size_t bytes = 0;
  Device device = Device::cpu;
  ~Storage() {
    if (ptr) allocator_for(device).deallocate(ptr);
  }
};

Tensor Tensor::empty(Shape shape, DType dtype, Device device) {
  for (auto d : shape) DIFFTX_CHECK(d >= 0, "negative dimension in shape {}", shape_string(shape));
  Tensor t;
  t.shape_ = std::move(shape);
  t.dtype_ = dtype;
  t.device_ = device;
  t.storage_ = std::make_shared<Storage>();
  t.storage_->bytes = t.nbytes();
  t.storage_->device = device;
  t.storage_->ptr = allocator_for(device).allocate(t.storage_->bytes);
  return t;
}

Tensor Tensor::zeros(Shape shape, DType dtype, Device device) {
  Tensor t = empty(std::move(shape), dtype, device);
  if (device == Device::cpu) {
    std::memset(t.raw(), 0, t.nbytes());
  } else {
    std::vector<std::byte> host(t.nbytes());
    allocator_for(device).copy(t.raw(), device, host.data(), Device::cpu, host.size());
  }
  return t;
}

Tensor Tensor::from_vector(Shape shape, const std::vector<float>& values, DType dtype) {
  DIFFTX_CHECK(static_cast<std::int64_t>(values.size()) == shape_numel(shape),
               "from_vector: {} values for shape {}", values.size(), shape_string(shape));
  Tensor t = empty(std::move(shape), dtype);
  for (std::size_t i = 0; i < values.size(); ++i) {
    switch (dtype) {
      case DType::f32:
        t.data<float>()[i] = values[i];
        break;
      case DType::f64:
        t.data<double>()[i] = values[i];
        break;
      case DType::bf16:
        t.data<std::uint16_t>()[i] = float_to_bf16(values[i]);
        break;
      case DType::i32:
        t.data<std::int32_t>()[i] = static_cast<std::int32_t>(values[i]);
        break;
    }
  }
  return t;
}

std::int64_t Tensor::dim(int i) const {
  int n = ndim();
  if (i < 0) i += n;
  DIFFTX_CHECK(i >= 0 && i < n, "dimension {} out of range for {}", i, describe());
  return shape_[static_cast<std::size_t>(i)];
}

void* Tensor::raw() const {
  DIFFTX_CHECK(defined(), "use of an undefined tensor");
  return static_cast<char*>(storage_->ptr) + offset_bytes_;
}

Tensor Tensor::reshape(Shape shape) const {
  DIFFTX_CHECK(shape_numel(shape) == numel(), "cannot reshape {} to {}", describe(),
               shape_string(shape));
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::rows(std::int64_t begin, std::int64_t end) const {
  DIFFTX_CHECK(ndim() >= 1 && 0 <= begin && begin <= end && end <= shape_[0],
               "rows [{}, {}) out of range for {}", begin, end, describe());
  Tensor t = *this;
  std::int64_t row = numel() / (shape_[0] == 0 ? 1 : shape_[0]);
  t.offset_bytes_ += static_cast<std::size_t>(begin * row) * dtype_size(dtype_);
  t.shape_[0] = end - begin;
  return t;
}

Tensor Tensor::view_as(DType dtype) const {
  DIFFTX_CHECK(dtype_size(dtype) == dtype_size(dtype_),
               "cannot view {} as {} (element sizes differ)", describe(), dtype_name(dtype));
  Tensor t = *this;
  t.dtype_ = dtype;
  return t;
}

Tensor Tensor::clone() const {
  Tensor t = empty(shape_, dtype_, device_);
  t.copy_from(*this);
  return t;
}

Tensor Tensor::to(Device device) const {
  Tensor t = empty(shape_, dtype_, device);
  t.copy_from(*this);
  return t;
}

void Tensor::copy_from(const Tensor& src) {
  DIFFTX_CHECK(src.shape_ == shape_ && src.dtype_ == dtype_, "copy of {} into {}", src.describe(),
               describe());
  Device via = device_ == Device::cuda ? Device::cuda : src.device_;
  allocator_for(via).copy(raw(), device_, src.raw(), src.device_, nbytes());
}

Tensor Tensor::to_dtype(DType dtype) const {
  DIFFTX_CHECK(device_ == Device::cpu, "to_dtype needs a CPU tensor, got {}", describe());
  if (dtype == dtype_) return clone();
  Tensor t = empty(shape_, dtype, Device::cpu);
  auto values = to_double_vector();
  for (std::size_t i = 0; i < values.size(); ++i) {
    switch (dtype) {
      case DType::f32:
        t.data<float>()[i] = static_cast<float>(values[i]);
        break;
      case DType::f64:
        t.data<double>()[i] = values[i];
        break;
      case DType::bf16:
        t.data<std::uint16_t>()[i] = float_to_bf16(static_cast<float>(values[i]));
        break;
      case DType::i32:
        t.data<std::int32_t>()[i] = static_cast<std::int32_t>(values[i]);
        break;
    }
  }
  return t;
}

std::vector<double> Tensor::to_double_vector() const {
  Tensor host = device_ == Device::cpu ? *this : to(Device::cpu);
  std::vector<double> out(static_cast<std::size_t>(numel()));
  for (std::size_t i = 0; i < out.size(); ++i) {
    switch (dtype_) {
      case DType::f32:
        out[i] = host.data<float>()[i];
        break;
      case DType::f64:
        out[i] = host.data<double>()[i];
        break;
      case DType::bf16:
        out[i] = bf16_to_float(host.data<std::uint16_t>()[i]);
        break;
      case DType::i32:
        out[i] = host.data<std::int32_t>()[i];
        break;
    }
  }
  return out;
}

std::vector<float> Tensor::to_float_vector() const {
  auto d = to_double_vector();
  return std::vector<float>(d.begin(), d.end());
}

std::string Tensor::describe() const {
  return fmt::format("{}{} on {}", dtype_name(dtype_), shape_string(shape_), device_name(device_));
}

std::uint16_t float_to_bf16(float value) {
  std::uint32_t bits;
  std::memcpy(&bits, &value, 4);
  if ((bits & 0x7f800000u) == 0x7f800000u && (bits & 0x007fffffu)) return 0x7fc0;  // NaN
  std::uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<std::uint16_t>((bits + rounding) >> 16);
}

float bf16_to_float(std::uint16_t bits) {
  std::uint32_t wide = static_cast<std::uint32_t>(bits) << 16;
  float value;
  std::memcpy(&value, &wide, 4);
  return value;
}

}  // namespace difftx
