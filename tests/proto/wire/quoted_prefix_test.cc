// QuotedPrefix (quoted_prefix.h): short values whole, long ones cut with their size, and
// nothing the client sent reaches the message unescaped.
#include "proto/wire/quoted_prefix.h"

#include <string>

#include "gtest/gtest.h"

namespace kvtier {
namespace {

TEST(QuotedPrefixTest, QuotesAValueUpToTheLimitWhole) {
  EXPECT_EQ(QuotedPrefix(""), "\"\"");
  EXPECT_EQ(QuotedPrefix("session-1"), "\"session-1\"");
  const std::string at_limit(kQuotedPrefixBytes, 'a');
  EXPECT_EQ(QuotedPrefix(at_limit), "\"" + at_limit + "\"");
}

TEST(QuotedPrefixTest, CutsALongerValueAndGivesItsSize) {
  EXPECT_EQ(QuotedPrefix("abcdef", 3), "\"abc…\" (6 bytes)");
  const std::string huge(1 << 20, 'x');
  EXPECT_EQ(QuotedPrefix(huge),
            "\"" + std::string(kQuotedPrefixBytes, 'x') + "…\" (1048576 bytes)");
}

TEST(QuotedPrefixTest, EscapesQuotesBackslashesAndUnprintableBytes) {
  EXPECT_EQ(QuotedPrefix(std::string("a\"b\\c\n\0\xff", 8)), R"("a\"b\\c\n\x00\xff")");
  // The cut counts the value's bytes, before escaping.
  EXPECT_EQ(QuotedPrefix("\x01\x02\x03", 2), "\"\\x01\\x02…\" (3 bytes)");
}

}  // namespace
}  // namespace kvtier
