// Loading what `difftx serve` serves: a difftx checkpoint folder (DIFF V1, V2 or softmax; a
// Llama-family model after `difftx import hf`) onto a backend, its tokenizer, its chat template
// (chat_template.json in the folder, an explicit file, or the default), and the engine over it.
#pragma once

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "difftx/engine/engine.h"
#include "difftx/model/backend.h"
#include "difftx/model/model.h"
#include "difftx/serve/chat_template.h"
#include "difftx/serve/text_codec.h"
#include "difftx/serve/token_generator.h"

namespace difftx::serve {

struct ServingModelOptions {
  std::filesystem::path
      checkpoint;  // a checkpoint folder (model.safetensors, config.json, tokenizer.model)
  std::string device = "cpu";  // cpu or cuda
  std::filesystem::path
      chat_template;  // "" = <checkpoint>/chat_template.json if present, else the default
  engine::EngineOptions engine;
};

struct ServingModel {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Model> model;
  std::unique_ptr<TokenGenerator> generator;  // the engine over `model`
  TextCodec codec;
  ChatTemplate chat;
  std::string chat_template_source;  // "default" or the file read
  nlohmann::json card;               // attention kind, parameters, device, ... for /v1/models

  ~ServingModel();  // the generator goes before the model it points to
};

// Throws difftx::Error naming the file or field: missing or bad checkpoint, no tokenizer, a
// tokenizer whose size differs from the model's vocabulary, bad chat template, bad engine options.
std::unique_ptr<ServingModel> load_serving_model(const ServingModelOptions& options);

}  // namespace difftx::serve
