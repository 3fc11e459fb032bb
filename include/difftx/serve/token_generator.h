// What the scheduler drives: the inference engine's interface (engine.h) as a virtual class, so
// that the product runs it over engine::Engine (EngineGenerator) and the tests over a scripted
// double. Only the scheduler thread calls it.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "difftx/engine/engine.h"

namespace difftx::serve {

class TokenGenerator {
 public:
  virtual ~TokenGenerator() = default;
  // As engine::Engine (engine.h): add throws difftx::Error for a request it refuses.
  virtual std::uint64_t add(engine::Request request) = 0;
  virtual void cancel(std::uint64_t sequence) = 0;
  virtual bool has_work() const = 0;
  virtual std::vector<engine::TokenEvent> step() = 0;
  virtual engine::EngineStats stats() const = 0;
};

// The engine behind the interface: owns an engine::Engine over `model` (which must outlive it).
class EngineGenerator final : public TokenGenerator {
 public:
  EngineGenerator(Model& model, engine::EngineOptions options);
  ~EngineGenerator() override;
  std::uint64_t add(engine::Request request) override;
  void cancel(std::uint64_t sequence) override;
  bool has_work() const override;
  std::vector<engine::TokenEvent> step() override;
  engine::EngineStats stats() const override;

 private:
  std::unique_ptr<engine::Engine> engine_;
};

}  // namespace difftx::serve
