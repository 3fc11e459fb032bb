// `difftx serve`: serve a checkpoint (or a run folder's newest one) over an OpenAI-compatible
// HTTP API with continuous batching (docs/serve.md).
#include <filesystem>
#include <memory>

#include "command_registry.h"
#include "difftx/core/error.h"
#include "difftx/runtime/checkpoint_store.h"
#include "difftx/serve/serve_app.h"

namespace difftx::cli {
namespace {

struct ServeArgs {
  std::string checkpoint;
  serve::ServeOptions options;
  double request_timeout_s = 600;
  double drain_timeout_s = 30;
  int http_threads = 0;
};

const CommandRegistration reg{
    45, [](CLI::App& app) {
      auto a = std::make_shared<ServeArgs>();
      auto& o = a->options;
      auto* cmd = app.add_subcommand(
          "serve", "Serve a checkpoint over an OpenAI-compatible HTTP API (docs/serve.md)");
      cmd->add_option("--checkpoint", a->checkpoint,
                      "A checkpoint folder, or a run folder (its newest checkpoint)")
          ->required();
      cmd->add_option("--host", o.http.host,
                      "Address to listen on (the default serves this machine only)")
          ->capture_default_str();
      cmd->add_option("--port", o.http.port,
                      "Port to listen on (0 = any free port, printed at start)")
          ->capture_default_str();
      cmd->add_option("--device", o.model.device, "cpu or cuda")->capture_default_str();
      cmd->add_option("--model-name", o.model_name,
                      "Model id clients send (default: the --checkpoint folder's name)");
      cmd->add_option("--api-key", o.http.api_key,
                      "Require 'Authorization: Bearer KEY' on /v1/* (or DIFFTX_API_KEY)")
          ->envname("DIFFTX_API_KEY");
      cmd->add_option("--max-batch", o.model.engine.max_batch,
                      "Sequences decoded together, at most")
          ->capture_default_str();
      cmd->add_option("--kv-memory", o.model.engine.kv_memory_bytes,
                      "KV-cache pool in bytes (suffixes K, M, G; 0 = a share of free memory)")
          ->transform(CLI::AsSizeValue(false))
          ->capture_default_str();
      cmd->add_option("--prefill-chunk", o.model.engine.prefill_chunk,
                      "Prompt tokens one sequence prefills per step")
          ->capture_default_str();
      cmd->add_option("--max-step-tokens", o.model.engine.max_step_tokens,
                      "Tokens processed in one step, at most")
          ->capture_default_str();
      cmd->add_option("--max-queue", o.max_queue,
                      "Sequences waiting beyond the running batch; more get 429")
          ->capture_default_str();
      cmd->add_option("--max-choices", o.max_choices, "Prompts x n per request, at most")
          ->capture_default_str();
      cmd->add_option("--request-timeout", a->request_timeout_s,
                      "Seconds a request may take (0 = no limit)")
          ->capture_default_str();
      cmd->add_option(
             "--drain-timeout", a->drain_timeout_s,
             "On SIGTERM: seconds in-flight requests may still run before they are cancelled")
          ->capture_default_str();
      cmd->add_option("--max-body-bytes", o.http.max_body_bytes, "Larger request bodies get 413")
          ->capture_default_str();
      cmd->add_option(
             "--http-threads", a->http_threads,
             "HTTP worker threads; each open request holds one (0 = max-batch + max-queue + 16)")
          ->capture_default_str();
      cmd->add_option("--chat-template", o.model.chat_template,
                      "Chat template JSON (default: the checkpoint's chat_template.json, else the "
                      "built-in one)");
      cmd->callback([a] {
        namespace fs = std::filesystem;
        // A checkpoint folder or a run folder (its newest checkpoint), as every command takes.
        const fs::path dir = resolve_checkpoint(a->checkpoint);
        auto& o = a->options;
        o.model.checkpoint = dir;
        if (o.model_name.empty()) {
          o.model_name = fs::path(a->checkpoint).lexically_normal().filename().string();
          if (o.model_name.empty())
            o.model_name =
                fs::path(a->checkpoint).lexically_normal().parent_path().filename().string();
          if (o.model_name.empty()) o.model_name = "difftx";
        }
        if (a->request_timeout_s < 0)
          fail("--request-timeout must be >= 0 (0 = no limit), got {}", a->request_timeout_s);
        if (a->drain_timeout_s < 0)
          fail("--drain-timeout must be >= 0, got {}", a->drain_timeout_s);
        o.request_timeout =
            std::chrono::milliseconds(static_cast<std::int64_t>(a->request_timeout_s * 1000));
        o.drain_timeout =
            std::chrono::milliseconds(static_cast<std::int64_t>(a->drain_timeout_s * 1000));
        if (a->http_threads < 0) fail("--http-threads must be >= 0, got {}", a->http_threads);
        o.http.threads = a->http_threads > 0
                             ? a->http_threads
                             : std::min(4096, o.model.engine.max_batch + o.max_queue + 16);
        serve::run_serve(o);
      });
    }};

}  // namespace
}  // namespace difftx::cli
