// JsonWriter: builds one JSON text, value by value, with the commas and escapes right: strings
// are UTF-8 with control characters, quotes, backslashes and < > & escaped (so the text can sit
// inside an HTML <script> element as it is); non-finite numbers are written as null.
//
// Not thread-safe: one writer per document.
#ifndef KVTIER_CLIENT_LOAD_JSON_WRITER_H_
#define KVTIER_CLIENT_LOAD_JSON_WRITER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace kvtier {

class JsonWriter {
 public:
  void BeginObject();
  void EndObject();
  void BeginArray();
  void EndArray();
  // The next value is this member's (inside an object).
  void Key(absl::string_view key);

  void String(absl::string_view value);
  void Int(int64_t value);
  void Double(double value);
  void Bool(bool value);

  // Key, then the value.
  void Field(absl::string_view key, absl::string_view value) {
    Member(key, &JsonWriter::String, value);
  }
  void Field(absl::string_view key, const char* value) { Member(key, &JsonWriter::String, value); }
  void Field(absl::string_view key, int64_t value) { Member(key, &JsonWriter::Int, value); }
  void Field(absl::string_view key, int value) { Member(key, &JsonWriter::Int, value); }
  void Field(absl::string_view key, double value) { Member(key, &JsonWriter::Double, value); }
  void Field(absl::string_view key, bool value) { Member(key, &JsonWriter::Bool, value); }

  const std::string& text() const { return text_; }

 private:
  template <typename Write, typename T>
  void Member(absl::string_view key, Write write, T value) {
    Key(key);
    (this->*write)(value);
  }
  // Before any value: a comma when it is not the first of its container.
  void Separate();
  void Open(char bracket);
  void Close(char bracket);

  std::string text_;
  std::vector<bool> first_;  // per open container: nothing written in it yet
  bool after_key_ = false;
};

}  // namespace kvtier

#endif  // KVTIER_CLIENT_LOAD_JSON_WRITER_H_
