// Load generator for `difftx serve` (or any OpenAI-compatible server): N concurrent streaming
// clients per level send completions with fixed-length prompts (token ids, so every server and
// model sees the same lengths) and a fixed number of generated tokens (ignore_eos), and report
// per level: output tokens/s, requests/s, time to first token and inter-token latency (p50 and
// p99), end-to-end latency. Results also go to a JSON file for scripts (run_gpu_serve_bench.sh).
//
//   bench_serve --port 8080 --concurrency 1,16,64 --prompt-tokens 128 --max-tokens 128
#include <fmt/core.h>
#include <httplib.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

struct Options {
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string api_key;
  std::string model;  // "" = the first of GET /v1/models
  std::vector<int> concurrency = {1, 16, 64};
  int requests_per_client = 4;
  int prompt_tokens = 128;
  int max_tokens = 128;
  std::int32_t first_id = 261;  // prompt ids are drawn from [first_id, vocab)
  std::string label;
  std::string out;
};

struct RequestRecord {
  bool ok = false;
  std::string error;
  double ttft = 0;           // seconds, request sent -> first token
  double e2e = 0;            // seconds, request sent -> [DONE]
  int tokens = 0;            // completion tokens (usage)
  std::vector<double> gaps;  // seconds between tokens (a chunk of k tokens adds k gaps of dt/k)
};

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double pos = p * double(v.size() - 1);
  const auto lo = static_cast<std::size_t>(pos);
  const std::size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - double(lo));
}

httplib::Headers auth(const Options& o) {
  httplib::Headers h;
  if (!o.api_key.empty()) h.emplace("Authorization", "Bearer " + o.api_key);
  return h;
}

RequestRecord run_request(const Options& o, const std::string& body) {
  RequestRecord rec;
  httplib::Client cli(o.host, o.port);
  cli.set_read_timeout(600, 0);
  cli.set_connection_timeout(30, 0);
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.headers = auth(o);
  req.set_header("Content-Type", "application/json");
  req.body = body;
  std::string buffer;
  const auto start = Clock::now();
  auto last = start;
  bool first = true;
  bool done = false;
  req.content_receiver = [&](const char* data, std::size_t len, std::uint64_t, std::uint64_t) {
    buffer.append(data, len);
    std::size_t end;
    while ((end = buffer.find("\n\n")) != std::string::npos) {
      const std::string event = buffer.substr(0, end);
      buffer.erase(0, end + 2);
      if (event.rfind("data: ", 0) != 0) continue;
      const std::string payload = event.substr(6);
      const auto now = Clock::now();
      if (payload == "[DONE]") {
        done = true;
        rec.e2e = std::chrono::duration<double>(now - start).count();
        continue;
      }
      json j = json::parse(payload, nullptr, false);
      if (j.is_discarded()) continue;
      if (j.contains("error")) {
        rec.error = j["error"].value("message", "error event");
        continue;
      }
      if (j.contains("usage") && j["usage"].is_object())
        rec.tokens = j["usage"]["completion_tokens"].get<int>();
      if (!j.contains("choices") || j["choices"].empty()) continue;
      const json& lp = j["choices"][0]["logprobs"];
      const int k = lp.is_object() ? int(lp["tokens"].size()) : 1;
      if (k == 0) continue;
      if (first) {
        rec.ttft = std::chrono::duration<double>(now - start).count();
        first = false;
        for (int i = 1; i < k; ++i) rec.gaps.push_back(0);
      } else {
        const double dt = std::chrono::duration<double>(now - last).count() / k;
        for (int i = 0; i < k; ++i) rec.gaps.push_back(dt);
      }
      last = now;
    }
    return true;
  };
  httplib::Response res;
  httplib::Error err = httplib::Error::Success;
  if (!cli.send(req, res, err)) {
    rec.error = fmt::format("no response ({})", httplib::to_string(err));
  } else if (res.status != 200) {
    rec.error = fmt::format("HTTP {}: {}", res.status, buffer.empty() ? res.body : buffer);
  } else if (!done) {
    rec.error = "stream ended without [DONE]";
  }
  rec.ok = rec.error.empty();
  return rec;
}

json run_level(const Options& o, int clients, int vocab, const std::string& model) {
  std::atomic<int> next{0};
  const int total = clients * o.requests_per_client;
  std::vector<RequestRecord> records(static_cast<std::size_t>(total));
  auto body_for = [&](int i) {
    std::mt19937 rng(static_cast<unsigned>(1000 + i));
    std::uniform_int_distribution<int> id(o.first_id, vocab - 1);
    std::vector<int> prompt(static_cast<std::size_t>(o.prompt_tokens));
    for (auto& t : prompt) t = id(rng);
    return json{{"model", model},
                {"prompt", prompt},
                {"max_tokens", o.max_tokens},
                {"temperature", 0},
                {"stream", true},
                {"ignore_eos", true},
                {"logprobs", 0},
                {"stream_options", {{"include_usage", true}}}}
        .dump();
  };
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&] {
      for (int i = next++; i < total; i = next++)
        records[static_cast<std::size_t>(i)] = run_request(o, body_for(i));
    });
  }
  for (auto& t : threads) t.join();
  const double wall = std::chrono::duration<double>(Clock::now() - start).count();
  std::vector<double> ttft, gaps, e2e;
  long tokens = 0;
  int failed = 0;
  std::string first_error;
  for (const auto& r : records) {
    if (!r.ok) {
      if (failed++ == 0) first_error = r.error;
      continue;
    }
    ttft.push_back(r.ttft);
    e2e.push_back(r.e2e);
    gaps.insert(gaps.end(), r.gaps.begin(), r.gaps.end());
    tokens += r.tokens;
  }
  return {{"concurrency", clients},
          {"requests", total},
          {"failed", failed},
          {"first_error", first_error},
          {"wall_s", wall},
          {"output_tokens", tokens},
          {"output_tokens_per_s", tokens / wall},
          {"requests_per_s", (total - failed) / wall},
          {"ttft_p50_ms", 1e3 * percentile(ttft, 0.5)},
          {"ttft_p99_ms", 1e3 * percentile(ttft, 0.99)},
          {"itl_p50_ms", 1e3 * percentile(gaps, 0.5)},
          {"itl_p99_ms", 1e3 * percentile(gaps, 0.99)},
          {"e2e_p50_s", percentile(e2e, 0.5)}};
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{
      "Load generator for difftx serve: concurrent streaming clients, throughput, TTFT, ITL"};
  app.add_option("--host", o.host, "Server host")->capture_default_str();
  app.add_option("--port", o.port, "Server port")->capture_default_str();
  app.add_option("--api-key", o.api_key, "Bearer key, if the server wants one");
  app.add_option("--model", o.model, "Model id (default: the server's first)");
  app.add_option("--concurrency", o.concurrency, "Concurrent clients per level, e.g. 1,16,64")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--requests-per-client", o.requests_per_client,
                 "Requests each client sends per level")
      ->capture_default_str();
  app.add_option("--prompt-tokens", o.prompt_tokens, "Prompt length in tokens")
      ->capture_default_str();
  app.add_option("--max-tokens", o.max_tokens, "Tokens generated per request (ignore_eos)")
      ->capture_default_str();
  app.add_option("--first-id", o.first_id, "Prompt ids are drawn from [first-id, vocab)")
      ->capture_default_str();
  app.add_option("--label", o.label, "Name of this run in the output");
  app.add_option("--out", o.out, "Write the results as JSON to this file");
  CLI11_PARSE(app, argc, argv);

  httplib::Client cli(o.host, o.port);
  cli.set_read_timeout(30, 0);
  auto models = cli.Get("/v1/models", auth(o));
  if (!models || models->status != 200) {
    fmt::print(stderr,
               "bench_serve: error: GET /v1/models on {}:{} failed ({}); is the server up?\n",
               o.host, o.port,
               models ? std::to_string(models->status) : httplib::to_string(models.error()));
    return 1;
  }
  const json m = json::parse(models->body)["data"][0];
  const std::string model = o.model.empty() ? m["id"].get<std::string>() : o.model;
  const int vocab = m.contains("difftx") ? m["difftx"]["vocab_size"].get<int>() : 32000;
  fmt::print(
      "bench_serve: {} model '{}' (vocab {}), prompt {} tokens, {} generated, {} requests per "
      "client\n",
      o.label, model, vocab, o.prompt_tokens, o.max_tokens, o.requests_per_client);

  // One warm-up request (lazy allocations, CUDA graph capture for batch 1).
  auto warm = run_request(o, json{{"model", model},
                                  {"prompt", std::vector<int>(8, o.first_id)},
                                  {"max_tokens", 4},
                                  {"stream", true},
                                  {"ignore_eos", true}}
                                 .dump());
  if (!warm.ok) {
    fmt::print(stderr, "bench_serve: error: warm-up request failed: {}\n", warm.error);
    return 1;
  }
  json results = json::array();
  fmt::print("{:>6} {:>6} {:>7} {:>10} {:>8} {:>9} {:>9} {:>9} {:>9} {:>8}\n", "conc", "reqs",
             "failed", "out tok/s", "req/s", "TTFT p50", "TTFT p99", "ITL p50", "ITL p99",
             "e2e p50");
  for (int c : o.concurrency) {
    json r = run_level(o, c, vocab, model);
    r["label"] = o.label;
    fmt::print(
        "{:>6} {:>6} {:>7} {:>10.1f} {:>8.2f} {:>7.1f}ms {:>7.1f}ms {:>7.2f}ms {:>7.2f}ms "
        "{:>7.2f}s\n",
        c, r["requests"].get<int>(), r["failed"].get<int>(), r["output_tokens_per_s"].get<double>(),
        r["requests_per_s"].get<double>(), r["ttft_p50_ms"].get<double>(),
        r["ttft_p99_ms"].get<double>(), r["itl_p50_ms"].get<double>(),
        r["itl_p99_ms"].get<double>(), r["e2e_p50_s"].get<double>());
    if (r["failed"].get<int>() > 0)
      fmt::print("       first error: {}\n", r["first_error"].get<std::string>());
    std::fflush(stdout);
    results.push_back(r);
  }
  if (!o.out.empty()) {
    std::ofstream(o.out) << results.dump(2) << "\n";
  }
  int failed = 0;
  for (const auto& r : results) failed += r["failed"].get<int>();
  return failed == 0 ? 0 : 1;
}
