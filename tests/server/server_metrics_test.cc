// ServerMetrics: magi_build_info, and the bounded `model` label of the job and queue metrics
// (server/server_metrics.h): series exist at 0 once a model is touched, gauges of a model
// whose jobs are gone read 0, counters are per model.
#include "server/server_metrics.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace magi {
namespace {

bool Has(const std::string& text, const std::string& line) { return text.find(line + "\n") != std::string::npos; }

TEST(ServerMetricsTest, BuildInfoIsOneWithVersionAndRevision) {
  ServerMetrics m;
  const std::string text = m.Serialize();
  EXPECT_TRUE(Has(text, std::string("magi_build_info{revision=\"") + BuildRevision() + "\",version=\"" + BuildVersion() +
                            "\"} 1"))
      << text;
  EXPECT_STRNE(BuildVersion(), "");
  EXPECT_STRNE(BuildRevision(), "");
}

TEST(ServerMetricsTest, TouchedModelHasEverySeriesAtZero) {
  ServerMetrics m;
  EXPECT_EQ(m.Serialize().find("model=\"magi-1-24b\""), std::string::npos);
  m.TouchModel("magi-1-24b");
  const std::string text = m.Serialize();
  for (const char* line : {"magi_queue_depth{model=\"magi-1-24b\"} 0", "magi_jobs_running{model=\"magi-1-24b\"} 0",
                           "magi_jobs_submitted_total{model=\"magi-1-24b\"} 0",
                           "magi_jobs_requeued_total{model=\"magi-1-24b\"} 0",
                           "magi_jobs_total{model=\"magi-1-24b\",outcome=\"failed\"} 0",
                           "magi_jobs_total{model=\"magi-1-24b\",outcome=\"succeeded\"} 0"}) {
    EXPECT_TRUE(Has(text, line)) << line << "\n" << text;
  }
}

TEST(ServerMetricsTest, GaugesPerModelAndZeroWhenDrained) {
  ServerMetrics m;
  m.SetJobGauges({{"a", 3}, {"b", 1}}, {{"a", 2}});
  std::string text = m.Serialize();
  EXPECT_TRUE(Has(text, "magi_queue_depth{model=\"a\"} 3")) << text;
  EXPECT_TRUE(Has(text, "magi_queue_depth{model=\"b\"} 1")) << text;
  EXPECT_TRUE(Has(text, "magi_jobs_running{model=\"a\"} 2")) << text;
  EXPECT_TRUE(Has(text, "magi_jobs_running{model=\"b\"} 0")) << text;
  m.SetJobGauges({}, {{"b", 1}});
  text = m.Serialize();
  EXPECT_TRUE(Has(text, "magi_queue_depth{model=\"a\"} 0")) << text;
  EXPECT_TRUE(Has(text, "magi_jobs_running{model=\"a\"} 0")) << text;
  EXPECT_TRUE(Has(text, "magi_jobs_running{model=\"b\"} 1")) << text;
}

TEST(ServerMetricsTest, CountersArePerModel) {
  ServerMetrics m;
  m.JobsSubmitted("a").Increment();
  m.JobsSubmitted("a").Increment();
  m.JobsSubmitted("b").Increment();
  m.JobsRequeued("b").Increment();
  m.JobsFinished("failed", "a").Increment();
  const std::string text = m.Serialize();
  EXPECT_TRUE(Has(text, "magi_jobs_submitted_total{model=\"a\"} 2")) << text;
  EXPECT_TRUE(Has(text, "magi_jobs_submitted_total{model=\"b\"} 1")) << text;
  EXPECT_TRUE(Has(text, "magi_jobs_requeued_total{model=\"b\"} 1")) << text;
  EXPECT_TRUE(Has(text, "magi_jobs_requeued_total{model=\"a\"} 0")) << text;
  EXPECT_TRUE(Has(text, "magi_jobs_total{model=\"a\",outcome=\"failed\"} 1")) << text;
  EXPECT_TRUE(Has(text, "magi_jobs_total{model=\"b\",outcome=\"failed\"} 0")) << text;
}

}  // namespace
}  // namespace magi
