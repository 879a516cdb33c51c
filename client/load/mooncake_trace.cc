#include "client/load/mooncake_trace.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <random>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace kvtier {
namespace {

// Reads one line's object from left to right: punctuation, "keys" without escapes, and
// integers. Errors name the column (from 1).
class LineScanner {
 public:
  explicit LineScanner(absl::string_view line) : line_(line) {}

  // Skips whitespace; consumes `c` if it comes next.
  bool Consume(char c) {
    SkipWhitespace();
    if (pos_ == line_.size() || line_[pos_] != c) return false;
    ++pos_;
    return true;
  }

  absl::Status Expect(char c) {
    if (Consume(c)) return absl::OkStatus();
    return Error(absl::StrCat("'", absl::string_view(&c, 1), "'"));
  }

  // After a list's item: `close` ends it, or a ',' goes on to the next.
  absl::StatusOr<bool> ListGoesOn(char close) {
    if (Consume(',')) return true;
    if (Consume(close)) return false;
    return Error(absl::StrCat("',' or '", absl::string_view(&close, 1), "'"));
  }

  absl::StatusOr<absl::string_view> Key() {
    if (!Consume('"')) return Error("a \"key\"");
    const size_t end = line_.find('"', pos_);
    if (end == absl::string_view::npos) return Error("a closing '\"'");
    const absl::string_view key = line_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return key;
  }

  absl::StatusOr<int64_t> Integer() {
    SkipWhitespace();
    const size_t begin = pos_;
    if (pos_ < line_.size() && line_[pos_] == '-') ++pos_;
    while (pos_ < line_.size() && absl::ascii_isdigit(line_[pos_])) ++pos_;
    int64_t value = 0;
    if (!absl::SimpleAtoi(line_.substr(begin, pos_ - begin), &value)) {
      pos_ = begin;
      return Error("an integer of at most 64 bits");
    }
    return value;
  }

  absl::Status ExpectEnd() {
    SkipWhitespace();
    return pos_ == line_.size() ? absl::OkStatus() : Error("the end of the line");
  }

 private:
  void SkipWhitespace() {
    while (pos_ < line_.size() && absl::ascii_isspace(line_[pos_])) ++pos_;
  }

  absl::Status Error(absl::string_view expected) const {
    const std::string found = pos_ == line_.size() ? "the end of the line"
                                                   : absl::StrCat("'", line_.substr(pos_, 12), "'");
    return absl::InvalidArgumentError(
        absl::StrCat("column ", pos_ + 1, ": expected ", expected, ", got ", found));
  }

  const absl::string_view line_;
  size_t pos_ = 0;
};

absl::StatusOr<int32_t> CheckLength(absl::string_view field, int64_t value, int32_t min) {
  if (value >= min && value <= std::numeric_limits<int32_t>::max()) {
    return static_cast<int32_t>(value);
  }
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": expected ", min, "..2147483647 tokens, got ", value));
}

// [id, ...], each id >= 0.
absl::Status ParseHashIds(LineScanner& scanner, std::vector<int64_t>* ids) {
  if (absl::Status status = scanner.Expect('['); !status.ok()) return status;
  if (scanner.Consume(']')) return absl::OkStatus();
  absl::StatusOr<bool> goes_on;
  do {
    absl::StatusOr<int64_t> id = scanner.Integer();
    if (!id.ok()) return id.status();
    if (*id < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("hash_ids[", ids->size(), "]: expected an id >= 0, got ", *id));
    }
    ids->push_back(*id);
    goes_on = scanner.ListGoesOn(']');
    if (!goes_on.ok()) return goes_on.status();
  } while (*goes_on);
  return absl::OkStatus();
}

absl::StatusOr<TraceRequest> ParseLine(absl::string_view line) {
  enum Key { kTimestamp, kInputLength, kOutputLength, kHashIds, kNumKeys };
  constexpr absl::string_view kKeys[kNumKeys] = {"timestamp", "input_length", "output_length",
                                                 "hash_ids"};
  bool seen[kNumKeys] = {};
  int64_t numbers[kNumKeys] = {};  // all but kHashIds
  TraceRequest request;
  LineScanner scanner(line);
  if (absl::Status status = scanner.Expect('{'); !status.ok()) return status;
  absl::StatusOr<bool> goes_on;
  do {
    absl::StatusOr<absl::string_view> name = scanner.Key();
    if (!name.ok()) return name.status();
    const int key = static_cast<int>(std::find(kKeys, kKeys + kNumKeys, *name) - kKeys);
    if (key == kNumKeys || seen[key]) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unexpected key \"", *name,
          "\" (expected timestamp, input_length, output_length and hash_ids, once each)"));
    }
    seen[key] = true;
    if (absl::Status status = scanner.Expect(':'); !status.ok()) return status;
    if (key == kHashIds) {
      if (absl::Status status = ParseHashIds(scanner, &request.hash_ids); !status.ok()) {
        return status;
      }
    } else {
      absl::StatusOr<int64_t> number = scanner.Integer();
      if (!number.ok()) return number.status();
      numbers[key] = *number;
    }
    goes_on = scanner.ListGoesOn('}');
    if (!goes_on.ok()) return goes_on.status();
  } while (*goes_on);
  if (absl::Status status = scanner.ExpectEnd(); !status.ok()) return status;
  for (int key = 0; key < kNumKeys; ++key) {
    if (!seen[key]) {
      return absl::InvalidArgumentError(absl::StrCat("missing key \"", kKeys[key], "\""));
    }
  }

  if (numbers[kTimestamp] < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("timestamp: expected >= 0 ms, got ", numbers[kTimestamp]));
  }
  request.timestamp_ms = numbers[kTimestamp];
  absl::StatusOr<int32_t> input = CheckLength("input_length", numbers[kInputLength], 1);
  if (!input.ok()) return input.status();
  absl::StatusOr<int32_t> output = CheckLength("output_length", numbers[kOutputLength], 0);
  if (!output.ok()) return output.status();
  request.input_length = *input;
  request.output_length = *output;
  const int64_t blocks = (int64_t{*input} + kTraceBlockTokens - 1) / kTraceBlockTokens;
  if (static_cast<int64_t>(request.hash_ids.size()) != blocks) {
    return absl::InvalidArgumentError(
        absl::StrCat("hash_ids: expected ", blocks, " ids for input_length ", *input, " (",
                     kTraceBlockTokens, " tokens each), got ", request.hash_ids.size()));
  }
  return request;
}

}  // namespace

absl::StatusOr<std::vector<TraceRequest>> ParseMooncakeTrace(absl::string_view text) {
  std::vector<TraceRequest> requests;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    absl::StatusOr<TraceRequest> request = ParseLine(line);
    if (!request.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_number, ": ", request.status().message()));
    }
    requests.push_back(*std::move(request));
  }
  return requests;
}

absl::StatusOr<std::vector<TraceRequest>> ReadMooncakeTrace(const std::string& path) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"),
                                                       &std::fclose);
  if (file == nullptr) {
    return absl::NotFoundError(absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
  }
  std::string text;
  char buffer[1 << 16];
  size_t read;
  while ((read = std::fread(buffer, 1, sizeof(buffer), file.get())) > 0) {
    text.append(buffer, read);
  }
  if (std::ferror(file.get())) {
    return absl::DataLossError(absl::StrCat(path, ": cannot read: ", std::strerror(errno)));
  }
  absl::StatusOr<std::vector<TraceRequest>> requests = ParseMooncakeTrace(text);
  if (!requests.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", requests.status().message()));
  }
  if (requests->empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": no requests"));
  }
  return requests;
}

int ScaledBlockTokens(double length_scale) {
  return std::max(1, static_cast<int>(std::lround(kTraceBlockTokens * length_scale)));
}

std::vector<int32_t> RequestTokens(const TraceRequest& request, int block_tokens) {
  const int64_t last_block =
      request.input_length - int64_t{kTraceBlockTokens} * (request.hash_ids.size() - 1);
  const size_t length =
      block_tokens * (request.hash_ids.size() - 1) +
      std::max<int64_t>(1, (last_block * block_tokens + kTraceBlockTokens / 2) / kTraceBlockTokens);
  std::vector<int32_t> tokens;
  tokens.reserve(length);
  for (int64_t id : request.hash_ids) {
    std::mt19937_64 rng(static_cast<uint64_t>(id));
    const size_t block_end = std::min<size_t>(tokens.size() + block_tokens, length);
    while (tokens.size() < block_end) tokens.push_back(static_cast<int32_t>(rng() >> 47));
  }
  return tokens;
}

}  // namespace kvtier
