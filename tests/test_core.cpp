// Core pieces: Philox against its published known-answer vectors, buffers and their byte
// count, tensors and views, device choice, checked-call messages, op argument validation.
#include <doctest/doctest.h>

#include <string>

#include "kernels/error.h"
#include "kernels/philox.h"
#include "nn/context.h"
#include "nn/ops.h"
#include "nn/tensor.h"
#include "tests/harness.h"

using namespace sp;

TEST_CASE("philox4x32-10 matches the Random123 known-answer vectors") {
    // Salmon et al., Random123 kat_vectors: counter (4 words), key (2 words) -> output.
    PhiloxBlock zero = philox4x32_10(0, 0, 0, 0, 0, 0);
    CHECK(zero.v[0] == 0x6627e8d5u);
    CHECK(zero.v[1] == 0xe169c58du);
    CHECK(zero.v[2] == 0xbc57ac4cu);
    CHECK(zero.v[3] == 0x9b00dbd8u);
    PhiloxBlock ones = philox4x32_10(~0u, ~0u, ~0u, ~0u, ~0u, ~0u);
    CHECK(ones.v[0] == 0x408f276du);
    CHECK(ones.v[1] == 0x41c83b0eu);
    CHECK(ones.v[2] == 0xa20bc7c6u);
    CHECK(ones.v[3] == 0x6d5451fdu);
    PhiloxBlock pi = philox4x32_10(0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u);
    CHECK(pi.v[0] == 0xd16cfe09u);
    CHECK(pi.v[1] == 0x94fdccebu);
    CHECK(pi.v[2] == 0x5001e420u);
    CHECK(pi.v[3] == 0x24126ea1u);
}

TEST_CASE("philox uniforms lie in (0, 1] and streams with different keys differ") {
    double sum = 0.0;
    int same = 0;
    const int n = 4096;
    uint64_t a = random_stream_key(1, 2, 3), b = random_stream_key(1, 2, 4);
    for (int i = 0; i < n; ++i) {
        float u = stream_uniform(a, static_cast<uint64_t>(i));
        CHECK(u > 0.0f);
        CHECK(u <= 1.0f);
        sum += u;
        same += u == stream_uniform(b, static_cast<uint64_t>(i));
    }
    // Mean of n uniforms: standard deviation sqrt(1/12/n) ~ 0.0045; allow 5 sigma.
    CHECK(std::fabs(sum / n - 0.5) < 5.0 * std::sqrt(1.0 / 12.0 / n));
    CHECK(same < 4);
    CHECK(random_stream_key(1, 2, 3) == random_stream_key(1, 2, 3));
    CHECK(random_stream_key(1, 2, 3) != random_stream_key(2, 2, 3));
    CHECK(random_stream_key(1, 2, 3) != random_stream_key(1, 3, 3));
}

TEST_CASE("buffers are zero-filled, move-only and counted") {
    size_t before = Buffer::live_bytes(Device::cpu);
    {
        Buffer a(Device::cpu, 1000);
        CHECK(Buffer::live_bytes(Device::cpu) == before + 1000);
        const unsigned char* p = static_cast<const unsigned char*>(a.data());
        bool all_zero = true;
        for (int i = 0; i < 1000; ++i) all_zero &= p[i] == 0;
        CHECK(all_zero);
        Buffer b(std::move(a));
        CHECK(a.data() == nullptr);
        CHECK(b.bytes() == 1000);
        CHECK(Buffer::live_bytes(Device::cpu) == before + 1000);
        CHECK(Buffer::peak_bytes(Device::cpu) >= before + 1000);
    }
    CHECK(Buffer::live_bytes(Device::cpu) == before);
}

TEST_CASE("tensors: shapes, views, reshape, copies") {
    Tensor t = Tensor::from_host({1, 2, 3, 4, 5, 6}, Shape{2, 3}, Device::cpu);
    CHECK(t.numel() == 6);
    CHECK(t.shape().str() == "(2, 3)");
    CHECK(t.owns_memory());
    Tensor v = t.reshaped(Shape{3, 2});
    CHECK_FALSE(v.owns_memory());
    CHECK(v.data() == t.data());
    v.data()[0] = 10;
    CHECK(t.to_host()[0] == 10);
    Tensor c = t.clone();
    c.fill(7);
    CHECK(t.to_host()[1] == 2);
    CHECK(c.to_host()[5] == 7);
    CHECK_THROWS_WITH_AS(t.reshaped(Shape{4, 2}), doctest::Contains("cannot reshape (2, 3) to (4, 2)"), Error);
    CHECK_THROWS_WITH_AS(Tensor::from_host({1, 2}, Shape{3}, Device::cpu), doctest::Contains("do not fill shape (3)"), Error);
}

TEST_CASE("device choice: cpu, auto, and a clear error for a bad name") {
    std::string why;
    CHECK(resolve_device("cpu", &why) == Device::cpu);
    CHECK(why.find("cpu") != std::string::npos);
    Device d = resolve_device("auto", &why);
    CHECK(d == (cuda_available() ? Device::cuda : Device::cpu));
    CHECK(why.find("auto") != std::string::npos);
    CHECK_THROWS_WITH_AS(resolve_device("gpu"), doctest::Contains("expected auto, cpu or cuda, got 'gpu'"), Error);
    if (!cuda_available()) {
        CHECK_THROWS_WITH_AS(resolve_device("cuda"), doctest::Contains("no usable CUDA GPU"), Error);
        CHECK_THROWS_AS(Context(Device::cuda), Error);
    }
}

TEST_CASE("the memory limit: an allocation past it is OutOfMemory with the sizes named; the peak can be reset") {
    // Freed bytes count again.
    const size_t live = Buffer::live_bytes(Device::cpu);
    Buffer::set_memory_limit(Device::cpu, live + 1000);
    {
        Buffer fits(Device::cpu, 600);
        CHECK_THROWS_WITH_AS(Buffer(Device::cpu, 600), doctest::Contains("600 bytes on cpu would exceed the memory limit"),
                             OutOfMemory);
    }
    CHECK_NOTHROW(Buffer(Device::cpu, 600));
    Buffer::set_memory_limit(Device::cpu, 0);
    CHECK_NOTHROW(Buffer(Device::cpu, 2000));
    // The peak can be reset to measure one phase.
    Buffer::reset_peak(Device::cpu);
    CHECK(Buffer::peak_bytes(Device::cpu) == Buffer::live_bytes(Device::cpu));
    { Buffer b(Device::cpu, 4096); }
    CHECK(Buffer::peak_bytes(Device::cpu) >= live + 4096);
}

TEST_CASE("ops reject bad shapes and devices with a message naming the op and tensor") {
    Context ctx(Device::cpu);
    Tensor x(Shape{2, 3, 8, 8}, Device::cpu), w(Shape{4, 3, 3, 3}, Device::cpu), y(Shape{2, 4, 7, 7}, Device::cpu);
    CHECK_THROWS_WITH_AS(conv2d_forward(ctx, x, w, nullptr, ConvGeometry{}, y),
                         doctest::Contains("conv2d_forward: output y has shape (2, 4, 7, 7), expected (2, 4, 6, 6)"), Error);
    Tensor w_bad(Shape{4, 2, 3, 3}, Device::cpu), y_ok(Shape{2, 4, 6, 6}, Device::cpu);
    CHECK_THROWS_WITH_AS(conv2d_forward(ctx, x, w_bad, nullptr, ConvGeometry{}, y_ok),
                         doctest::Contains("expects 2 input channels"), Error);
    Tensor logits(Shape{4, 10}, Device::cpu), labels(Shape{3}, Device::cpu);
    CHECK_THROWS_WITH_AS(softmax_cross_entropy(ctx, logits, labels, 0.0f, nullptr),
                         doctest::Contains("labels (N) has shape (3), expected (4)"), Error);
    Tensor a(Shape{5}, Device::cpu), b(Shape{6}, Device::cpu);
    CHECK_THROWS_WITH_AS(add(ctx, a, b, a), doctest::Contains("add: b has shape (6), expected (5)"), Error);
    Tensor p(Shape{5}, Device::cpu);
    CHECK_THROWS_WITH_AS(dropout_forward(ctx, a, 1.0f, 1, p, p), doctest::Contains("[0, 1)"), Error);
}
