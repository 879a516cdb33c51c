#include "client/load/json_writer.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace kvtier {

void JsonWriter::Separate() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (!first_.empty()) {
    if (!first_.back()) text_ += ',';
    first_.back() = false;
  }
}

void JsonWriter::Open(char bracket) {
  Separate();
  text_ += bracket;
  first_.push_back(true);
}

void JsonWriter::Close(char bracket) {
  text_ += bracket;
  first_.pop_back();
}

void JsonWriter::BeginObject() { Open('{'); }
void JsonWriter::EndObject() { Close('}'); }
void JsonWriter::BeginArray() { Open('['); }
void JsonWriter::EndArray() { Close(']'); }

void JsonWriter::Key(absl::string_view key) {
  String(key);
  text_ += ':';
  after_key_ = true;
}

void JsonWriter::String(absl::string_view value) {
  Separate();
  text_ += '"';
  for (const char c : value) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      text_ += '\\';
      text_ += c;
    } else if (u < 0x20 || c == '<' || c == '>' || c == '&') {
      absl::StrAppendFormat(&text_, "\\u%04x", u);
    } else {
      text_ += c;
    }
  }
  text_ += '"';
}

void JsonWriter::Int(int64_t value) {
  Separate();
  absl::StrAppend(&text_, value);
}

void JsonWriter::Double(double value) {
  Separate();
  if (!std::isfinite(value)) {
    text_ += "null";
    return;
  }
  absl::StrAppendFormat(&text_, "%.6g", value);
}

void JsonWriter::Bool(bool value) {
  Separate();
  text_ += value ? "true" : "false";
}

}  // namespace kvtier
