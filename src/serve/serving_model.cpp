// load_serving_model: checkpoint -> backend parameters -> Model -> engine, plus tokenizer and
// chat template.
#include "difftx/serve/serving_model.h"

#include "difftx/core/error.h"
#include "difftx/model/checkpoint.h"
#include "difftx/model/params.h"
#include "difftx/runtime/backend_factory.h"

namespace difftx::serve {
namespace fs = std::filesystem;

ServingModel::~ServingModel() {
  generator.reset();
  model.reset();
}

std::unique_ptr<ServingModel> load_serving_model(const ServingModelOptions& options) {
  ModelCheckpoint ck = load_model_checkpoint(options.checkpoint);
  if (ck.tokenizer.empty()) {
    fail(
        "checkpoint '{}' has no tokenizer.model; the server needs the tokenizer the model was "
        "trained with",
        options.checkpoint.string());
  }
  auto out = std::make_unique<ServingModel>();
  out->codec = TextCodec::load(ck.tokenizer);
  if (out->codec.vocab_size() != ck.config.vocab_size) {
    fail(
        "checkpoint '{}': the tokenizer has {} pieces but the model's vocab_size is {}; they do "
        "not belong together",
        options.checkpoint.string(), out->codec.vocab_size(), ck.config.vocab_size);
  }
  fs::path template_file = options.chat_template;
  if (template_file.empty() && fs::exists(options.checkpoint / "chat_template.json")) {
    template_file = options.checkpoint / "chat_template.json";
  }
  out->chat = template_file.empty() ? ChatTemplate{} : ChatTemplate::load(template_file);
  out->chat_template_source = template_file.empty() ? "default" : template_file.string();

  out->backend = make_backend(options.device);
  ParamSet params;
  for (std::size_t i = 0; i < ck.params.size(); ++i) {
    Tensor t = ck.params.tensor(i).to_dtype(out->backend->param_dtype());
    params.add(ck.params.name(i),
               out->backend->device() == Device::cpu ? t : t.to(out->backend->device()));
  }
  out->model = std::make_unique<Model>(ck.config, *out->backend, std::move(params));
  engine::EngineOptions engine_options = options.engine;
  engine_options.eos_id = out->codec.eos_id();
  out->generator = std::make_unique<EngineGenerator>(*out->model, engine_options);
  out->card = {{"difftx",
                {{"attention", attention_kind_name(ck.config.attention)},
                 {"parameters", parameter_count(ck.config)},
                 {"layers", ck.config.n_layers},
                 {"d_model", ck.config.d_model},
                 {"vocab_size", ck.config.vocab_size},
                 {"device", options.device},
                 {"backend", out->backend->name()},
                 {"step", ck.step},
                 {"tokenizer", out->codec.is_difftx() ? "difftx" : "sentencepiece"},
                 {"chat_template", out->chat_template_source}}}};
  return out;
}

}  // namespace difftx::serve
