// BatchGradient::MeanGradient (tools/train_tiny/batch_gradient.h): the gradient of the mean of
// per-sample losses, bit-equal whether the samples run on one worker or several, replacing
// what .grad held; the first failing sample's error returned as it is.
#include "tools/train_tiny/batch_gradient.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace magi {
namespace {

// Loss of sample i: sum((w * x_i)^2) + b * i, so dL/dw = 2 w x_i^2 and dL/db = i; `unused` is
// reached by no sample.
struct Toy {
  at::Tensor w = at::tensor({0.5f, -1.5f, 2.0f}).requires_grad_(true);
  at::Tensor b = at::tensor({3.0f}).requires_grad_(true);
  at::Tensor unused = at::zeros({2}).requires_grad_(true);
  std::vector<at::Tensor> xs = {at::tensor({1.0f, 2.0f, 3.0f}), at::tensor({-1.0f, 0.5f, 0.0f}),
                                at::tensor({2.0f, -2.0f, 1.0f})};
  absl::StatusOr<at::Tensor> Loss(int i) const { return (w * xs[i]).pow(2).sum() + b.sum() * i; }
};

TEST(MeanGradientTest, IsTheGradientOfTheMeanLossBitEqualOnAnyWorkerCount) {
  at::Tensor first_w;
  // Each worker count, without and with cost estimates (which change the order samples are
  // taken in, not the result).
  for (int run = 0; run < 6; ++run) {
    const int workers = std::vector<int>{1, 2, 5}[static_cast<size_t>(run % 3)];
    const std::vector<double> cost = run < 3 ? std::vector<double>{} : std::vector<double>{1, 3, 2};
    Toy t;
    t.w.mutable_grad() = at::full({3}, 100.0f);  // a stale gradient: replaced, not added to
    const BatchGradient batches(workers);
    auto mean = batches.MeanGradient({t.w, t.b, t.unused}, 3, "toy", [&](int i) { return t.Loss(i); }, cost);
    ASSERT_TRUE(mean.ok()) << mean.status();
    double expected_loss = 0;
    at::Tensor expected_w = at::zeros({3});
    for (int i = 0; i < 3; ++i) {
      expected_loss += t.Loss(i)->item<double>() / 3;
      expected_w += 2 * t.w.detach() * t.xs[i].pow(2) / 3;
    }
    EXPECT_NEAR(*mean, expected_loss, 1e-5) << workers;
    EXPECT_TRUE(at::allclose(t.w.grad(), expected_w, 1e-6, 1e-6)) << workers << ": " << t.w.grad();
    EXPECT_NEAR(t.b.grad().item<double>(), (0.0 + 1.0 + 2.0) / 3, 1e-6) << workers;
    EXPECT_FALSE(t.unused.grad().defined()) << workers;
    if (!first_w.defined()) first_w = t.w.grad().clone();
    EXPECT_TRUE(at::equal(t.w.grad(), first_w)) << workers << " workers: " << t.w.grad() << " vs " << first_w;
  }
}

// One worker takes the samples costliest first (ties in sample order); without costs, in order.
TEST(MeanGradientTest, TakesTheCostliestSamplesFirst) {
  Toy t;
  const BatchGradient batches(1);
  for (const auto& [cost, want] : {std::pair<std::vector<double>, std::vector<int>>{{1, 3, 2}, {1, 2, 0}},
                                   {{2, 2, 5}, {2, 0, 1}},
                                   {{}, {0, 1, 2}}}) {
    std::vector<int> taken;
    auto mean = batches.MeanGradient({t.w}, 3, "toy", [&](int i) {
      taken.push_back(i);
      return t.Loss(i);
    }, cost);
    ASSERT_TRUE(mean.ok()) << mean.status();
    EXPECT_EQ(taken, want);
  }
  auto bad = batches.MeanGradient({t.w}, 3, "toy", [&](int i) { return t.Loss(i); }, {1.0, 2.0});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("2 sample costs for 3 samples"), std::string::npos) << bad.status();
}

TEST(MeanGradientTest, ReturnsTheFailingSamplesErrorAndRefusesAnEmptyBatch) {
  Toy t;
  const BatchGradient batches(2);
  auto r = batches.MeanGradient({t.w}, 3, "toy", [&](int i) -> absl::StatusOr<at::Tensor> {
    if (i == 1) return absl::InvalidArgumentError("sample 1 is bad");
    return t.Loss(i);
  });
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "sample 1 is bad");
  // An ATen exception in a worker becomes an Internal error naming the trainer.
  r = batches.MeanGradient({t.w}, 2, "toy", [&](int i) -> absl::StatusOr<at::Tensor> {
    return (t.w * at::ones({4})).sum();  // shapes 3 and 4 do not broadcast
  });
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInternal);
  EXPECT_NE(r.status().message().find("toy failed: "), std::string::npos) << r.status();
  r = batches.MeanGradient({t.w}, 0, "toy", [&](int i) { return t.Loss(i); });
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("n >= 1"), std::string::npos) << r.status();
}

// For its lifetime ATen computes with one thread; the caller's count comes back after.
TEST(MeanGradientTest, HoldsOneAtenThreadAndRestoresTheCallers) {
  at::set_num_threads(2);
  {
    const BatchGradient batches(2);
    EXPECT_EQ(at::get_num_threads(), 1);
  }
  EXPECT_EQ(at::get_num_threads(), 2);
}

}  // namespace
}  // namespace magi
