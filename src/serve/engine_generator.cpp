// EngineGenerator: engine::Engine behind the scheduler's TokenGenerator interface.
#include "difftx/serve/token_generator.h"

namespace difftx::serve {

EngineGenerator::EngineGenerator(Model& model, engine::EngineOptions options)
    : engine_(std::make_unique<engine::Engine>(model, options)) {}

EngineGenerator::~EngineGenerator() = default;

std::uint64_t EngineGenerator::add(engine::Request request) {
  return engine_->add(std::move(request));
}
void EngineGenerator::cancel(std::uint64_t sequence) {
  engine_->cancel(sequence);
}
bool EngineGenerator::has_work() const {
  return engine_->has_work();
}
std::vector<engine::TokenEvent> EngineGenerator::step() {
  return engine_->step();
}
engine::EngineStats EngineGenerator::stats() const {
  return engine_->stats();
}

}  // namespace difftx::serve
