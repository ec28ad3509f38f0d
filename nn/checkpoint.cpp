// safetensors reading and writing, atomic file replacement.
#include "nn/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "kernels/error.h"

namespace sp {

using json = nlohmann::json;

namespace {

std::string read_whole_file(const std::string& path, const char* what) {
    std::ifstream in(path, std::ios::binary);
    SP_REQUIRE(in, "cannot open " << what << " " << path);
    std::string contents((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    SP_REQUIRE(!in.bad(), "cannot read " << what << " " << path);
    return contents;
}

}  // namespace

const CheckpointEntry& Checkpoint::get(const std::string& name, const Shape& shape) const {
    auto it = tensors.find(name);
    SP_REQUIRE(it != tensors.end(), path << ": checkpoint has no tensor '" << name << "'");
    SP_REQUIRE(it->second.shape == shape, path << ": tensor '" << name << "' has shape " << it->second.shape.str()
                                                << ", the model expects " << shape.str());
    return it->second;
}

const std::string& Checkpoint::meta(const std::string& key) const {
    auto it = metadata.find(key);
    SP_REQUIRE(it != metadata.end(), path << ": checkpoint metadata has no key '" << key << "'");
    return it->second;
}

void write_file_atomically(const std::string& path, const std::string& contents) {
    const std::string tmp = path + ".tmp." + std::to_string(::getpid());
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    SP_REQUIRE(fd >= 0, "cannot write " << tmp << ": " << std::strerror(errno));
    size_t done = 0;
    while (done < contents.size()) {
        ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            int err = errno;
            ::close(fd);
            ::unlink(tmp.c_str());
            fail("cannot write " + tmp + ": " + std::strerror(err), __FILE__, __LINE__);
        }
        done += static_cast<size_t>(n);
    }
    if (::fsync(fd) != 0 || ::close(fd) != 0) {
        ::unlink(tmp.c_str());
        fail("cannot flush " + tmp + ": " + std::strerror(errno), __FILE__, __LINE__);
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        int err = errno;
        ::unlink(tmp.c_str());
        fail("cannot rename " + tmp + " to " + path + ": " + std::strerror(err), __FILE__, __LINE__);
    }
    // Make the rename itself durable.
    std::string dir = path.find('/') == std::string::npos ? "." : path.substr(0, path.rfind('/'));
    int dfd = ::open(dir.empty() ? "/" : dir.c_str(), O_RDONLY);
    if (dfd >= 0) {
        ::fsync(dfd);
        ::close(dfd);
    }
}

void save_checkpoint(const std::string& path, const std::vector<std::pair<std::string, const Tensor*>>& tensors,
                     const std::map<std::string, std::string>& metadata) {
    json header = json::object();
    std::set<std::string> names;
    uint64_t offset = 0;
    for (const auto& [name, t] : tensors) {
        SP_REQUIRE(names.insert(name).second, "checkpoint " << path << ": tensor name '" << name << "' used twice");
        SP_REQUIRE(name != "__metadata__", "checkpoint " << path << ": '__metadata__' is reserved");
        uint64_t bytes = static_cast<uint64_t>(t->numel()) * sizeof(float);
        header[name] = {{"dtype", "F32"}, {"shape", t->shape().dims()}, {"data_offsets", {offset, offset + bytes}}};
        offset += bytes;
    }
    if (!metadata.empty()) header["__metadata__"] = metadata;
    std::string text = header.dump();
    text.append((8 - text.size() % 8) % 8, ' ');  // the format recommends 8-byte alignment of the data

    std::string contents;
    contents.reserve(8 + text.size() + offset);
    uint64_t length = text.size();
    for (int i = 0; i < 8; ++i) contents.push_back(static_cast<char>((length >> (8 * i)) & 0xFF));
    contents += text;
    for (const auto& entry : tensors) {
        std::vector<float> values = entry.second->to_host();  // little-endian hosts only (x86-64, arm64)
        contents.append(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
    }
    write_file_atomically(path, contents);
}

void save_checkpoint(const std::string& path, const Checkpoint& checkpoint) {
    std::vector<Tensor> views;
    std::vector<std::pair<std::string, const Tensor*>> named;
    views.reserve(checkpoint.tensors.size());  // no reallocation: `named` points into it
    for (const auto& [name, e] : checkpoint.tensors) {
        views.push_back(Tensor::view(const_cast<float*>(e.values.data()), e.shape, Device::cpu));
        named.emplace_back(name, &views.back());
    }
    save_checkpoint(path, named, checkpoint.metadata);
}

Checkpoint load_checkpoint(const std::string& path) { return parse_checkpoint(read_whole_file(path, "checkpoint"), path); }

Checkpoint parse_checkpoint(const std::string& contents, const std::string& path) {
    SP_REQUIRE(contents.size() >= 8, path << ": not a safetensors file (" << contents.size() << " bytes, need at least 8)");
    uint64_t length = 0;
    for (int i = 0; i < 8; ++i) length |= static_cast<uint64_t>(static_cast<unsigned char>(contents[i])) << (8 * i);
    SP_REQUIRE(length <= contents.size() - 8, path << ": header length " << length << " exceeds the file ("
                                                   << contents.size() << " bytes): truncated or not safetensors");
    json header;
    try {
        header = json::parse(contents.begin() + 8, contents.begin() + 8 + static_cast<std::ptrdiff_t>(length));
    } catch (const json::exception& e) {
        fail(path + ": header is not valid JSON: " + e.what(), __FILE__, __LINE__);
    }
    SP_REQUIRE(header.is_object(), path << ": header must be a JSON object");
    const uint64_t data_bytes = contents.size() - 8 - length;
    const char* data = contents.data() + 8 + length;

    Checkpoint ck;
    ck.path = path;
    std::vector<std::pair<uint64_t, uint64_t>> ranges;
    for (auto it = header.begin(); it != header.end(); ++it) {
        if (it.key() == "__metadata__") {
            SP_REQUIRE(it->is_object(), path << ": __metadata__ must be an object of strings");
            for (auto m = it->begin(); m != it->end(); ++m) {
                SP_REQUIRE(m->is_string(), path << ": __metadata__." << m.key() << " must be a string");
                ck.metadata[m.key()] = m->get<std::string>();
            }
            continue;
        }
        const json& e = *it;
        SP_REQUIRE(e.is_object() && e.contains("dtype") && e.contains("shape") && e.contains("data_offsets"),
                   path << ": tensor '" << it.key() << "' needs dtype, shape and data_offsets");
        SP_REQUIRE(e["dtype"] == "F32", path << ": tensor '" << it.key() << "' has dtype " << e["dtype"].dump() << ", expected \"F32\"");
        const json& offsets = e["data_offsets"];
        SP_REQUIRE(offsets.is_array() && offsets.size() == 2 && offsets[0].is_number_unsigned() && offsets[1].is_number_unsigned(),
                   path << ": tensor '" << it.key() << "': data_offsets must be two non-negative integers");
        uint64_t begin = offsets[0].get<uint64_t>(), end = offsets[1].get<uint64_t>();
        SP_REQUIRE(begin <= end && end <= data_bytes, path << ": tensor '" << it.key() << "': data_offsets [" << begin << ", "
                                                            << end << ") outside the " << data_bytes << " data bytes (truncated?)");
        std::vector<int64_t> dims;
        SP_REQUIRE(e["shape"].is_array(), path << ": tensor '" << it.key() << "': shape must be an array");
        uint64_t numel = 1;
        for (const json& d : e["shape"]) {
            SP_REQUIRE(d.is_number_unsigned() && d.get<uint64_t>() < (1ull << 40),
                       path << ": tensor '" << it.key() << "': bad dimension " << d.dump());
            dims.push_back(d.get<int64_t>());
            numel *= d.get<uint64_t>();
            SP_REQUIRE(numel < (1ull << 40), path << ": tensor '" << it.key() << "': shape too large");
        }
        SP_REQUIRE(numel * sizeof(float) == end - begin, path << ": tensor '" << it.key() << "': shape holds " << numel
                                                              << " floats but data_offsets span " << end - begin << " bytes");
        ranges.emplace_back(begin, end);
        CheckpointEntry entry{Shape(dims), std::vector<float>(numel)};
        if (end > begin) std::memcpy(entry.values.data(), data + begin, end - begin);  // an empty vector's data() may be null
        ck.tensors.emplace(it.key(), std::move(entry));
    }
    std::sort(ranges.begin(), ranges.end());
    for (size_t i = 1; i < ranges.size(); ++i)
        SP_REQUIRE(ranges[i].first >= ranges[i - 1].second, path << ": tensors overlap in the data section");
    return ck;
}

void add_description(const ModelDescription& d, std::map<std::string, std::string>& metadata) {
    metadata["architecture"] = d.architecture;
    metadata["input_shape"] = json(d.input_shape).dump();
    metadata["num_classes"] = std::to_string(d.num_classes);
    metadata["normalization"] = d.mean.empty() ? "null" : json{{"mean", d.mean}, {"std", d.std}}.dump();
    metadata["model_options"] =
        json{{"shortcut", d.shortcut}, {"bn_momentum", d.bn_momentum}, {"bn_eps", d.bn_eps}, {"dropout", d.dropout}}.dump();
    metadata["widths"] = json(d.widths).dump();
    metadata["channel_sets"] = json(d.channel_sets).dump();
    metadata["weight_masks"] = json(d.weight_masks).dump();
}

bool has_description(const Checkpoint& ck) { return ck.metadata.count("architecture") > 0; }

ModelDescription read_description(const Checkpoint& ck) {
    SP_REQUIRE(has_description(ck), ck.path << ": checkpoint has no model description (metadata 'architecture', "
                                                "'input_shape', 'normalization', ...): it was written before spinprune "
                                                "stored one; spinprune still rebuilds it from its 'config' and 'widths'");
    // The JSON value of `key`, which must exist and satisfy `valid` (`expected` says what that is).
    auto value = [&](const char* key, const char* expected, auto valid) {
        const json v = json::parse(ck.meta(key), nullptr, /*allow_exceptions=*/false);
        SP_REQUIRE(!v.is_discarded() && valid(v),
                   ck.path << ": metadata '" << key << "' is '" << ck.meta(key) << "', expected " << expected);
        return v;
    };
    auto is_widths = [](const json& v) {
        if (!v.is_object()) return false;
        for (const auto& w : v)
            if (!w.is_number_integer() || w.get<int64_t>() < 1) return false;
        return true;
    };
    auto is_floats = [](const json& v, size_t n) {
        if (!v.is_array() || v.size() != n) return false;
        for (const auto& x : v)
            if (!x.is_number()) return false;
        return true;
    };
    ModelDescription d;
    d.architecture = ck.meta("architecture");
    const json shape = value("input_shape", "[C, H, W] of positive integers", [](const json& v) {
        if (!v.is_array() || v.size() != 3) return false;
        for (const auto& x : v)
            if (!x.is_number_integer() || x.get<int64_t>() < 1) return false;
        return true;
    });
    d.input_shape = shape.get<std::vector<int64_t>>();
    d.num_classes = value("num_classes", "a positive integer",
                          [](const json& v) { return v.is_number_integer() && v.get<int64_t>() > 0; })
                        .get<int64_t>();
    const size_t channels = static_cast<size_t>(d.input_shape[0]);
    const json norm = value("normalization", "null or {\"mean\": [...], \"std\": [...]} of one number per input channel",
                            [&](const json& v) {
                                return v.is_null() || (v.is_object() && v.contains("mean") && v.contains("std") &&
                                                       is_floats(v["mean"], channels) && is_floats(v["std"], channels));
                            });
    if (!norm.is_null()) {
        d.mean = norm["mean"].get<std::vector<float>>();
        d.std = norm["std"].get<std::vector<float>>();
        for (float s : d.std) SP_REQUIRE(s > 0.0f, ck.path << ": metadata 'normalization' has std " << s << ", expected > 0");
    }
    const json options = value("model_options", "{\"shortcut\": \"A\" | \"B\", \"bn_momentum\", \"bn_eps\", \"dropout\"}",
                               [](const json& v) {
                                   return v.is_object() && v.contains("shortcut") &&
                                          (v["shortcut"] == "A" || v["shortcut"] == "B") && v.contains("bn_momentum") &&
                                          v["bn_momentum"].is_number() && v.contains("bn_eps") && v["bn_eps"].is_number() &&
                                          v.contains("dropout") && v["dropout"].is_number();
                               });
    d.shortcut = options["shortcut"].get<std::string>();
    d.bn_momentum = options["bn_momentum"].get<float>();
    d.bn_eps = options["bn_eps"].get<float>();
    d.dropout = options["dropout"].get<float>();
    d.widths = value("widths", "an object of positive integer widths", is_widths).get<std::map<std::string, int64_t>>();
    d.channel_sets =
        value("channel_sets", "an object of positive integer widths", is_widths).get<std::map<std::string, int64_t>>();
    d.weight_masks = value("weight_masks", "an array of layer names", [](const json& v) {
                         if (!v.is_array()) return false;
                         for (const auto& x : v)
                             if (!x.is_string()) return false;
                         return true;
                     }).get<std::vector<std::string>>();
    for (const std::string& layer : d.weight_masks)
        SP_REQUIRE(ck.tensors.count(layer + ".weight_mask") && ck.tensors.count(layer + ".weight"),
                   ck.path << ": metadata 'weight_masks' names layer '" << layer << "', but the checkpoint lacks '"
                           << layer << ".weight' or '" << layer << ".weight_mask'");
    return d;
}

MaskFile parse_mask(const std::string& contents, const std::string& path, int64_t units) {
    Checkpoint ck = parse_checkpoint(contents, path);
    auto format = ck.metadata.find("format");
    SP_REQUIRE(format != ck.metadata.end() && format->second == kMaskFormat,
               path << ": not a mask file: expected metadata format \"" << kMaskFormat << "\", found "
                    << (format == ck.metadata.end() ? "none" : "\"" + format->second + "\""));
    auto state = ck.tensors.find("state");
    SP_REQUIRE(state != ck.tensors.end(), path << ": mask file has no tensor 'state'");
    SP_REQUIRE(state->second.shape == Shape{units}, path << ": mask 'state' has shape " << state->second.shape.str()
                                                          << ", the model's mask space expects (" << units
                                                          << ") units (another model, width or granularity?)");
    const std::vector<float>& values = state->second.values;
    for (size_t i = 0; i < values.size(); ++i)
        SP_REQUIRE(values[i] == 0.0f || values[i] == 1.0f,
                   path << ": mask unit " << i << " is " << values[i] << ", expected 0 (pruned) or 1 (kept)");
    return {std::move(state->second.values), std::move(ck.metadata)};
}

MaskFile load_mask(const std::string& path, int64_t units) {
    return parse_mask(read_whole_file(path, "mask file"), path, units);
}

}  // namespace sp
