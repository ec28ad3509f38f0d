// The population evaluator. The mini-batch is replicated once per member (member-major), the
// population is attached and one forward in eval mode gives every member's logits;
// member_energies reduces them per member. Filter masks attach as (P, K) output gates. Weight
// and kernel masks change the weights themselves: they attach as P stacked masks, and every
// conv/linear layer convolves the regrouped batch with the P masked weight copies in one
// grouped convolution (nn/layers.h, population_forward) — P times the weight traffic, one
// launch instead of P. grouped_weight_masks = false runs those members one after another
// instead. bench/population.cpp measures both paths against one-by-one evaluation.
#include "pruning/population.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "kernels/error.h"
#include "pruning/surgery.h"

namespace sp {

EnergyKind energy_from_name(const std::string& name) {
    if (name == "cross-entropy" || name == "cross_entropy") return EnergyKind::cross_entropy;
    if (name == "margin") return EnergyKind::margin;
    if (name == "error") return EnergyKind::error;
    SP_REQUIRE(false, "unknown energy '" << name << "' (expected cross-entropy, margin or error)");
    return EnergyKind::margin;
}

const char* energy_name(EnergyKind kind) {
    switch (kind) {
        case EnergyKind::cross_entropy: return "cross-entropy";
        case EnergyKind::margin: return "margin";
        case EnergyKind::error: return "error";
    }
    return "?";
}

namespace {

// Puts the model back as it was on every exit path: masks detached, mode restored, and the BN
// running statistics restored when per-member batch statistics were used.
class ModelRestore {
public:
    ModelRestore(MaskSpace& space, bool save_statistics) : space_(space), training_(space.model().training()) {
        if (save_statistics) saved_states_ = space.model().parameters().states().clone();
    }
    ~ModelRestore() {
        try {
            space_.detach();
            space_.model().set_training(training_);
            if (saved_states_.defined()) space_.model().parameters().states().copy_from(saved_states_);
        } catch (...) {  // a destructor must not throw
        }
    }

private:
    MaskSpace& space_;
    bool training_;
    Tensor saved_states_;
};

// Eval mode, or (per-member batch statistics) eval mode except train-mode batch norms: dropout
// stays off either way.
void set_evaluation_mode(Model& model, bool member_batch_statistics) {
    model.set_training(false);
    if (!member_batch_statistics) return;
    for (const LayerWiring& w : model.wiring())
        if (w.bn) w.bn->set_training(true);
}

// The rows [begin, begin + count) of a (P, D) population as a (count, D) view.
Tensor member_rows(const Tensor& population, int64_t begin, int64_t count) {
    const int64_t d = population.dim(1);
    return Tensor::view(const_cast<float*>(population.data()) + begin * d, Shape{count, d}, population.device());
}

Tensor elements(Tensor& t, int64_t begin, int64_t count) {
    return Tensor::view(t.data() + begin, Shape{count}, t.device());
}

void require_inputs(const MaskSpace& space, Context& ctx, const Model& model, const Tensor& population,
                    const Tensor& images, const Tensor& labels, const Tensor& energies) {
    const char* op = "PopulationEvaluator";
    for (const Tensor* t : {&population, &images, &labels, &energies})
        SP_REQUIRE(t->device() == ctx.device(), op << ": every tensor must be on " << device_name(ctx.device()));
    SP_REQUIRE(population.rank() == 2 && population.dim(0) > 0 && population.dim(1) == space.size(),
               op << ": population " << population.shape().str() << ", expected (P, " << space.size() << ")");
    const Shape& in = model.input_shape();
    SP_REQUIRE(images.rank() == 4 && images.dim(0) > 0 && images.dim(1) == in[0] && images.dim(2) == in[1] &&
                   images.dim(3) == in[2],
               op << ": images " << images.shape().str() << ", expected (B, " << in[0] << ", " << in[1] << ", "
                  << in[2] << ")");
    SP_REQUIRE(labels.shape() == Shape{images.dim(0)},
               op << ": labels " << labels.shape().str() << ", expected (" << images.dim(0) << ")");
    SP_REQUIRE(energies.shape() == Shape{population.dim(0)},
               op << ": energies " << energies.shape().str() << ", expected (" << population.dim(0) << ")");
}

// Every member keeps at least min_kept units of every segment (no layer emptied) and holds only 0/1.
void require_valid_members(const MaskSpace& space, const Tensor& population) {
    const std::vector<float> host = population.to_host();
    const int64_t d = space.size();
    for (int64_t p = 0; p < population.dim(0); ++p) {
        for (const MaskSegment& seg : space.segments()) {
            int64_t kept = 0;
            for (int64_t u = seg.offset; u < seg.offset + seg.size; ++u) {
                const float v = host[static_cast<size_t>(p * d + u)];
                SP_REQUIRE(v == 0.0f || v == 1.0f, "PopulationEvaluator: member " << p << " has unit " << u << " = " << v
                                                                                  << "; masks hold 0 or 1");
                kept += v == 1.0f;
            }
            SP_REQUIRE(kept >= seg.min_kept, "PopulationEvaluator: member " << p << " keeps " << kept << " of the "
                                                                            << seg.size << " units of " << seg.name
                                                                            << ": at least " << seg.min_kept
                                                                            << " must stay (a layer is never emptied)");
        }
    }
}

// Energies come back finite, or the evaluation names the member that was not.
void require_finite_energies(const Tensor& energies) {
    const std::vector<float> e = energies.to_host();
    for (size_t p = 0; p < e.size(); ++p)
        SP_REQUIRE(std::isfinite(e[p]), "PopulationEvaluator: member " << p << " has a non-finite energy (" << e[p]
                                                                       << "): NaN/Inf in the weights, BN statistics or "
                                                                          "images?");
}

}  // namespace

PopulationEvaluator::PopulationEvaluator(MaskSpace& space, PopulationOptions options)
    : space_(space), options_(options) {
    SP_REQUIRE(options_.max_images_per_pass >= 0,
               "PopulationEvaluator: max_images_per_pass must be >= 0, got " << options_.max_images_per_pass);
}

void PopulationEvaluator::evaluate_chunk(Context& ctx, const Tensor& members, int64_t batch, Tensor& energies) {
    // members (m, D); replicated_ holds at least m·B images and labels_ their labels.
    const int64_t m = members.dim(0);
    const Shape& s = replicated_.shape();
    Tensor x = Tensor::view(replicated_.data(), Shape{m * batch, s[1], s[2], s[3]}, ctx.device());  // (m·B, C, H, W)
    Tensor y = Tensor::view(labels_.data(), Shape{m * batch}, ctx.device());
    space_.attach(ctx, members);
    Tensor& logits = space_.model().forward(ctx, x);  // (m·B, classes)
    member_energies(ctx, logits, y, options_.energy, energies);
}

void PopulationEvaluator::evaluate(Context& ctx, const Tensor& population, const Tensor& images,
                                   const Tensor& labels, Tensor& energies) {
    Model& model = space_.model();
    require_inputs(space_, ctx, model, population, images, labels, energies);
    if (options_.check_members) require_valid_members(space_, population);
    if (space_.granularity() != Granularity::filter && !options_.grouped_weight_masks) {
        evaluate_one_by_one(ctx, population, images, labels, energies);
        members_per_pass_ = 1;
        return;
    }
    if (options_.compact_members) {
        evaluate_compacted(ctx, population, images, labels, energies);
        members_per_pass_ = 1;
        return;
    }
    const int64_t p = population.dim(0), b = images.dim(0);
    ModelRestore restore(space_, options_.member_batch_statistics);
    set_evaluation_mode(model, options_.member_batch_statistics);
    // Members per forward: all, or as many as max_images_per_pass allows; per-member batch
    // statistics need one member per forward (BN's statistics are over the whole batch).
    int64_t chunk = p;
    if (options_.max_images_per_pass > 0) chunk = std::max<int64_t>(1, std::min(p, options_.max_images_per_pass / b));
    if (options_.member_batch_statistics) chunk = 1;
    int64_t filled = 0;  // members' worth of replicated images and labels already in place
    int64_t done = 0;
    while (done < p) {
        const int64_t m = std::min(chunk, p - done);
        try {
            if (m > filled) {
                const Shape& in = model.input_shape();
                replicated_ = Tensor(Shape{m * b, in[0], in[1], in[2]}, ctx.device());  // (m·B, C, H, W)
                labels_ = Tensor(Shape{m * b}, ctx.device());
                const int64_t per_image = images.numel();
                for (int64_t j = 0; j < m; ++j) {
                    Tensor::view(replicated_.data() + j * per_image, images.shape(), ctx.device()).copy_from(images);
                    Tensor::view(labels_.data() + j * b, labels.shape(), ctx.device()).copy_from(labels);
                }
                filled = m;
            }
            Tensor e = elements(energies, done, m);
            evaluate_chunk(ctx, member_rows(population, done, m), b, e);
        } catch (const OutOfMemory&) {
            if (m == 1) throw;
            // Out of memory: free the replicas and retry with half as many members per forward.
            replicated_ = Tensor();
            labels_ = Tensor();
            filled = 0;
            chunk = std::max<int64_t>(1, m / 2);
            continue;
        }
        done += m;
    }
    members_per_pass_ = chunk;
    require_finite_energies(energies);
}

void PopulationEvaluator::evaluate_compacted(Context& ctx, const Tensor& population, const Tensor& images,
                                             const Tensor& labels, Tensor& energies) {
    SP_REQUIRE(space_.granularity() == Granularity::filter && space_.options().gate_after_bn,
               "PopulationEvaluator: compact_members needs filter masks that gate after BN, got "
                   << granularity_name(space_.granularity()) << " masks"
                   << (space_.options().gate_after_bn ? "" : " gating before BN"));
    space_.detach();  // compaction copies the dense weights
    const std::vector<float> host = population.to_host();
    const int64_t d = population.dim(1);
    for (int64_t p = 0; p < population.dim(0); ++p) {
        const std::vector<float> state(host.begin() + p * d, host.begin() + (p + 1) * d);
        std::unique_ptr<Model> compact = compact_model(space_.model(), space_.kept_channels(state));
        set_evaluation_mode(*compact, options_.member_batch_statistics);  // its statistics are its own copy
        Tensor& logits = compact->forward(ctx, images);  // (B, classes)
        Tensor e = elements(energies, p, 1);
        member_energies(ctx, logits, labels, options_.energy, e);
    }
    require_finite_energies(energies);
}

void PopulationEvaluator::evaluate_one_by_one(Context& ctx, const Tensor& population, const Tensor& images,
                                              const Tensor& labels, Tensor& energies) {
    Model& model = space_.model();
    require_inputs(space_, ctx, model, population, images, labels, energies);
    if (options_.check_members) require_valid_members(space_, population);
    ModelRestore restore(space_, options_.member_batch_statistics);
    set_evaluation_mode(model, options_.member_batch_statistics);
    const int64_t d = population.dim(1);
    for (int64_t p = 0; p < population.dim(0); ++p) {
        const Tensor state = Tensor::view(const_cast<float*>(population.data()) + p * d, Shape{d}, ctx.device());
        space_.attach(ctx, state);
        Tensor& logits = model.forward(ctx, images);  // (B, classes)
        Tensor e = elements(energies, p, 1);
        member_energies(ctx, logits, labels, options_.energy, e);
    }
    require_finite_energies(energies);
}

}  // namespace sp
