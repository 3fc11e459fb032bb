// The scheduler thread over the FakeGenerator: jobs join a running batch, events reach their
// jobs, the in-flight bound answers queue_full, consumer cancellation / abandonment / timeouts
// free the sequences, drains cancel at their deadline, engine failures fail every open job.
#include <gtest/gtest.h>

#include "difftx/serve/scheduler.h"
#include "fake_generator.h"

namespace difftx::serve {
namespace {

using namespace std::chrono_literals;
using testing::FakeGenerator;
using testing::FakeGeneratorOptions;

engine::Request make_request(std::int32_t first, int max_new, std::uint64_t seed = 0) {
  engine::Request r;
  r.prompt = {2, first, first + 1};
  r.max_new_tokens = max_new;
  r.sampling.temperature = 0;
  r.sampling.seed = seed;
  return r;
}

// Consumes a job until it ends; returns the events per choice.
std::vector<std::vector<engine::TokenEvent>> drain(Job& job,
                                                   std::chrono::milliseconds limit = 10s) {
  std::vector<std::vector<engine::TokenEvent>> per(static_cast<std::size_t>(job.choice_count()));
  const auto until = Clock::now() + limit;
  std::vector<JobEvent> events;
  bool more = true;
  while (more && Clock::now() < until) {
    events.clear();
    more = job.wait(events, 20ms);
    for (auto& e : events) per[static_cast<std::size_t>(e.choice)].push_back(e.event);
  }
  EXPECT_FALSE(more) << "job did not end in time";
  return per;
}

struct Fixture {
  explicit Fixture(FakeGeneratorOptions o = {}, int max_in_flight = 16)
      : generator(o), scheduler(generator, metrics, SchedulerOptions{max_in_flight, 10ms}) {
    scheduler.start();
  }
  FakeGenerator generator;
  ServerMetrics metrics;
  Scheduler scheduler;
};

TEST(ServeScheduler, DeliversEveryTokenAndFinishes) {
  Fixture f;
  std::vector<std::shared_ptr<Job>> jobs;
  for (int i = 0; i < 6; ++i) {
    jobs.push_back(std::make_shared<Job>(
        std::vector<engine::Request>{make_request(300 + i, 5 + i), make_request(310 + i, 3)},
        Clock::time_point::max()));
    ASSERT_EQ(f.scheduler.submit(jobs.back()), Admission::accepted);
  }
  for (int i = 0; i < 6; ++i) {
    auto per = drain(*jobs[static_cast<std::size_t>(i)]);
    ASSERT_EQ(per[0].size(), std::size_t(5 + i));
    ASSERT_EQ(per[1].size(), 3u);
    for (int k = 0; k < 5 + i; ++k) {
      EXPECT_EQ(per[0][static_cast<std::size_t>(k)].token,
                FakeGenerator::token_at(jobs[static_cast<std::size_t>(i)]->request(0), k,
                                        f.generator.options()));
    }
    EXPECT_EQ(per[0].back().finish, engine::FinishReason::length);
  }
  EXPECT_TRUE(f.scheduler.wait_idle(5s));
  EXPECT_EQ(f.scheduler.in_flight(), 0);
  EXPECT_GT(f.generator.max_batch_seen(), 1);  // jobs shared steps
  const std::string text = f.metrics.render();
  EXPECT_NE(text.find("difftx_time_to_first_token_seconds_count 12"), std::string::npos) << text;
  EXPECT_NE(text.find("difftx_generation_tokens_total " +
                      std::to_string(6 * 3 + (5 + 6 + 7 + 8 + 9 + 10))),
            std::string::npos);
}

TEST(ServeScheduler, BoundedAdmission) {
  FakeGeneratorOptions o;
  o.step_delay = 5ms;
  Fixture f(o, 3);
  auto a = std::make_shared<Job>(
      std::vector<engine::Request>{make_request(300, 50), make_request(301, 50)},
      Clock::time_point::max());
  auto b = std::make_shared<Job>(
      std::vector<engine::Request>{make_request(302, 50), make_request(303, 50)},
      Clock::time_point::max());
  auto c = std::make_shared<Job>(std::vector<engine::Request>{make_request(304, 2)},
                                 Clock::time_point::max());
  EXPECT_EQ(f.scheduler.submit(a), Admission::accepted);
  EXPECT_EQ(f.scheduler.submit(b), Admission::queue_full);  // 2 + 2 > 3
  EXPECT_EQ(f.scheduler.submit(c), Admission::accepted);
  a->abandon();
  drain(*a);
  drain(*c);
  EXPECT_EQ(a->abort_reason(), AbortReason::client_gone);
  EXPECT_TRUE(f.scheduler.wait_idle(5s));
  EXPECT_EQ(f.scheduler.submit(b), Admission::accepted);
  drain(*b);
}

TEST(ServeScheduler, ConsumerCancelFreesOnlyThatChoice) {
  FakeGeneratorOptions o;
  o.step_delay = 2ms;
  Fixture f(o);
  auto job = std::make_shared<Job>(
      std::vector<engine::Request>{make_request(300, 40), make_request(301, 6)},
      Clock::time_point::max());
  ASSERT_EQ(f.scheduler.submit(job), Admission::accepted);
  ASSERT_TRUE(job->wait_admitted(5s));
  job->cancel_choice(0);
  auto per = drain(*job);
  EXPECT_EQ(per[0].back().finish, engine::FinishReason::cancelled);
  EXPECT_LT(per[0].size(), 40u);
  EXPECT_EQ(per[1].size(), 6u);
  EXPECT_EQ(per[1].back().finish, engine::FinishReason::length);
  EXPECT_EQ(f.generator.cancelled().size(), 1u);
  EXPECT_EQ(f.generator.open_sequences(), 0);
}

TEST(ServeScheduler, TimeoutCancelsWithReason) {
  FakeGeneratorOptions o;
  o.step_delay = 5ms;
  Fixture f(o);
  auto job = std::make_shared<Job>(std::vector<engine::Request>{make_request(300, 60)},
                                   Clock::now() + 40ms);
  ASSERT_EQ(f.scheduler.submit(job), Admission::accepted);
  auto per = drain(*job);
  EXPECT_EQ(job->abort_reason(), AbortReason::timeout);
  EXPECT_EQ(per[0].back().finish, engine::FinishReason::cancelled);
  EXPECT_NE(f.metrics.render().find("difftx_request_timeouts_total 1"), std::string::npos);
}

TEST(ServeScheduler, DrainRefusesNewWorkAndCancelsAtTheDeadline) {
  FakeGeneratorOptions o;
  o.step_delay = 5ms;
  Fixture f(o);
  auto short_job = std::make_shared<Job>(std::vector<engine::Request>{make_request(300, 3)},
                                         Clock::time_point::max());
  auto long_job = std::make_shared<Job>(std::vector<engine::Request>{make_request(301, 60)},
                                        Clock::time_point::max());
  ASSERT_EQ(f.scheduler.submit(short_job), Admission::accepted);
  ASSERT_EQ(f.scheduler.submit(long_job), Admission::accepted);
  ASSERT_TRUE(long_job->wait_admitted(5s));
  f.scheduler.begin_drain(Clock::now() + 60ms);
  EXPECT_EQ(f.scheduler.submit(std::make_shared<Job>(
                std::vector<engine::Request>{make_request(302, 3)}, Clock::time_point::max())),
            Admission::draining);
  auto s = drain(*short_job);
  EXPECT_EQ(s[0].back().finish, engine::FinishReason::length);  // finished within the drain
  auto l = drain(*long_job);
  EXPECT_EQ(l[0].back().finish, engine::FinishReason::cancelled);
  EXPECT_EQ(long_job->abort_reason(), AbortReason::shutdown);
  EXPECT_TRUE(f.scheduler.wait_idle(5s));
}

TEST(ServeScheduler, RefusedAndFailedJobsCarryErrors) {
  FakeGeneratorOptions o;
  o.context = 8;
  Fixture f(o);
  engine::Request too_long = make_request(300, 3);
  too_long.prompt.assign(20, 300);
  auto refused = std::make_shared<Job>(std::vector<engine::Request>{make_request(300, 3), too_long},
                                       Clock::time_point::max());
  ASSERT_EQ(f.scheduler.submit(refused), Admission::accepted);
  drain(*refused);
  ASSERT_TRUE(refused->error().has_value());
  EXPECT_EQ(refused->error()->status, 400);
  EXPECT_TRUE(f.scheduler.wait_idle(5s));

  f.generator.set_throw_on_step(true);
  auto failed = std::make_shared<Job>(std::vector<engine::Request>{make_request(300, 3)},
                                      Clock::time_point::max());
  ASSERT_EQ(f.scheduler.submit(failed), Admission::accepted);
  drain(*failed);
  ASSERT_TRUE(failed->error().has_value());
  EXPECT_EQ(failed->error()->status, 500);
  EXPECT_NE(failed->error()->message.find("injected engine failure"), std::string::npos);
  EXPECT_TRUE(f.scheduler.wait_idle(5s));
}

TEST(ServeScheduler, StopFailsOpenJobs) {
  FakeGeneratorOptions o;
  o.step_delay = 5ms;
  auto f = std::make_unique<Fixture>(o);
  auto job = std::make_shared<Job>(std::vector<engine::Request>{make_request(300, 60)},
                                   Clock::time_point::max());
  ASSERT_EQ(f->scheduler.submit(job), Admission::accepted);
  ASSERT_TRUE(job->wait_admitted(5s));
  f->scheduler.stop();
  drain(*job);
  ASSERT_TRUE(job->error().has_value());
  EXPECT_EQ(job->error()->status, 503);
  EXPECT_EQ(f->scheduler.submit(job), Admission::draining);
}

TEST(ServeMetrics, PrometheusText) {
  ServerMetrics m;
  m.count_request("completions", 200);
  m.count_request("completions", 200);
  m.count_request("chat_completions", 400);
  m.observe_time_to_first_token(0.003);
  m.observe_time_to_first_token(200);
  m.observe_step(12);
  engine::EngineStats s;
  s.running = 3;
  s.waiting = 2;
  s.kv_blocks_used = 17;
  s.kv_blocks_total = 64;
  m.set_engine_state(s, 1);
  const std::string t = m.render();
  EXPECT_NE(t.find("difftx_requests_total{endpoint=\"completions\",code=\"200\"} 2"),
            std::string::npos);
  EXPECT_NE(t.find("difftx_requests_total{endpoint=\"chat_completions\",code=\"400\"} 1"),
            std::string::npos);
  EXPECT_NE(t.find("# TYPE difftx_time_to_first_token_seconds histogram"), std::string::npos);
  EXPECT_NE(t.find("difftx_time_to_first_token_seconds_bucket{le=\"0.001\"} 0"), std::string::npos);
  EXPECT_NE(t.find("difftx_time_to_first_token_seconds_bucket{le=\"0.005\"} 1"), std::string::npos);
  EXPECT_NE(t.find("difftx_time_to_first_token_seconds_bucket{le=\"80\"} 1"), std::string::npos);
  EXPECT_NE(t.find("difftx_time_to_first_token_seconds_bucket{le=\"+Inf\"} 2"), std::string::npos);
  EXPECT_NE(t.find("difftx_time_to_first_token_seconds_count 2"), std::string::npos);
  EXPECT_NE(t.find("difftx_num_requests_running 3"), std::string::npos);
  EXPECT_NE(t.find("difftx_num_requests_waiting 3"), std::string::npos);
  EXPECT_NE(t.find("difftx_kv_blocks_used 17"), std::string::npos);
  EXPECT_NE(t.find("difftx_batch_size 12"), std::string::npos);
  EXPECT_NE(t.find("difftx_batch_size_steps_bucket{le=\"16\"} 1"), std::string::npos);
  EXPECT_EQ(m.requests_total("completions", 200), 2);
}

}  // namespace
}  // namespace difftx::serve
