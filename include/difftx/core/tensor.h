// Tensor: a shaped, typed, reference-counted buffer on one device. Row-major, contiguous.
// Views share storage (reshape, row slices); no autograd, no broadcasting: ops live in backends.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "difftx/core/error.h"

namespace difftx {

enum class DType : std::uint8_t { f32, f64, bf16, i32 };
enum class Device : std::uint8_t { cpu, cuda };

std::size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);
const char* device_name(Device device);

using Shape = std::vector<std::int64_t>;
std::string shape_string(const Shape& shape);
std::int64_t shape_numel(const Shape& shape);

// Allocates and frees raw memory for one device. The CPU one is built in; the CUDA backend
// registers its own at start-up, so core code never includes CUDA headers.
class DeviceAllocator {
 public:
  virtual ~DeviceAllocator() = default;
  virtual void* allocate(std::size_t bytes) = 0;
  virtual void deallocate(void* ptr) = 0;
  // Copies `bytes` between any two devices (kinds given) in the current stream, synchronously.
  virtual void copy(void* dst, Device dst_device, const void* src, Device src_device,
                    std::size_t bytes) = 0;
  // Total memory of the device in bytes (for refusing what cannot fit); 0 if unknown.
  virtual std::uint64_t capacity_bytes() const { return 0; }
};
void register_allocator(Device device, DeviceAllocator* allocator);
DeviceAllocator& allocator_for(Device device);
// capacity_bytes() of the device's allocator; 0 when unknown or when no allocator is registered.
std::uint64_t device_capacity_bytes(Device device);

class Tensor {
 public:
  Tensor() = default;

  static Tensor empty(Shape shape, DType dtype, Device device = Device::cpu);
  static Tensor zeros(Shape shape, DType dtype, Device device = Device::cpu);
  // CPU only: a tensor filled from host values (converted to dtype).
  static Tensor from_vector(Shape shape, const std::vector<float>& values,
                            DType dtype = DType::f32);

  bool defined() const { return static_cast<bool>(storage_); }
  const Shape& shape() const { return shape_; }
  std::int64_t dim(int i) const;
  int ndim() const { return static_cast<int>(shape_.size()); }
  std::int64_t numel() const { return shape_numel(shape_); }
  std::size_t nbytes() const { return static_cast<std::size_t>(numel()) * dtype_size(dtype_); }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }

  void* raw() const;
  template <typename T>
  T* data() const;  // checked: dtype must match T, tensor must be on the CPU

  // Same storage, new shape with the same element count.
  Tensor reshape(Shape shape) const;
  // Rows [begin, end) along dimension 0 (a view sharing storage).
  Tensor rows(std::int64_t begin, std::int64_t end) const;
  // The same bytes read as another dtype of the same element size (e.g. i32 <-> f32), a view.
  Tensor view_as(DType dtype) const;

  // Deep copies.
  Tensor clone() const;
  Tensor to(Device device) const;
  Tensor to_dtype(DType dtype) const;  // CPU only
  void copy_from(const Tensor& src);   // same shape and dtype, any devices

  // CPU only: values converted to float / double (for tests, checkpoints, printing).
  std::vector<float> to_float_vector() const;
  std::vector<double> to_double_vector() const;

  std::string describe() const;  // e.g. "f32[4, 8] on cpu"

 private:
  struct Storage;
  std::shared_ptr<Storage> storage_;
  std::size_t offset_bytes_ = 0;
  Shape shape_;
  DType dtype_ = DType::f32;
  Device device_ = Device::cpu;
};

// bf16 <-> f32 conversion on the host (round to nearest even).
std::uint16_t float_to_bf16(float value);
float bf16_to_float(std::uint16_t bits);

template <typename T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() {
  return DType::f32;
}
template <>
constexpr DType dtype_of<double>() {
  return DType::f64;
}
template <>
constexpr DType dtype_of<std::int32_t>() {
  return DType::i32;
}
template <>
constexpr DType dtype_of<std::uint16_t>() {
  return DType::bf16;
}

template <typename T>
T* Tensor::data() const {
  DIFFTX_CHECK(dtype_ == dtype_of<T>(), "tensor {} accessed as {}", describe(),
               dtype_name(dtype_of<T>()));
  DIFFTX_CHECK(device_ == Device::cpu, "tensor {} accessed from the host", describe());
  return static_cast<T*>(raw());
}

}  // namespace difftx
