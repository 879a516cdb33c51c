// The --html report opens in headless Chromium (Debian's chromium, which scripts/install-deps
// installs) with no console error, its six plots drawn in the DOM, and a screenshot written
// into the build tree (kvtier-load-report.png beside this test's binary) for people to look at.
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client/load/load_tool.h"

namespace kvtier::test {
namespace {

using ::testing::HasSubstr;

ChildRun RunChromium(const std::vector<std::string>& flags, const std::string& page) {
  std::vector<std::string> command = {"/usr/bin/chromium",
                                      "--headless",
                                      "--no-sandbox",
                                      "--disable-gpu",
                                      "--enable-logging=stderr",
                                      "--v=0",
                                      "--user-data-dir=" + TempPath("chromium-profile")};
  command.insert(command.end(), flags.begin(), flags.end());
  command.push_back("file://" + page);
  return RunChild(command);
}

// The page's console messages, as Chromium logs them to stderr.
std::vector<std::string> ConsoleLines(const std::string& log) {
  std::vector<std::string> lines;
  for (absl::string_view line : absl::StrSplit(log, '\n')) {
    if (line.find(":CONSOLE") != absl::string_view::npos ||
        line.find("Uncaught") != absl::string_view::npos) {
      lines.emplace_back(line);
    }
  }
  return lines;
}

int Count(const std::string& text, const std::string& what) {
  int count = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) {
    ++count;
  }
  return count;
}

TEST_F(LoadToolTest, TheHtmlReportRendersInChromium) {
  ASSERT_EQ(std::system("test -x /usr/bin/chromium"), 0)
      << "Debian's chromium is missing: scripts/install-deps installs it";
  const std::string html = std::string(KVTIER_LOAD_TEST_OUTPUT_DIR) + "/kvtier-load-report.html";
  const std::string screenshot =
      std::string(KVTIER_LOAD_TEST_OUTPUT_DIR) + "/kvtier-load-report.png";
  std::remove(screenshot.c_str());
  const ChildRun run =
      RunLoadTool({coordinator_flag(), "--sessions=3", "--turns=3", "--system_tokens=40",
                   "--prompt_tokens=lognormal:12:0.5", "--decode_tokens=uniform:4:12",
                   "--think_ms=exp:3", "--duration=2s", "--slice=200ms", "--html=" + html});
  ASSERT_EQ(run.exit_code, 0) << run.output << run.errors;
  std::ifstream file(html);
  std::stringstream page;
  page << file.rdbuf();
  // Self-contained: nothing to load (the one http:// is the SVG namespace's name).
  for (const char* remote : {"https://", "src=", "href=", "<link", "url(", "@import"}) {
    EXPECT_EQ(Count(page.str(), remote), 0) << remote;
  }
  EXPECT_EQ(Count(page.str(), "http://"), Count(page.str(), "\"http://www.w3.org/2000/svg\""));

  const ChildRun dom = RunChromium({"--dump-dom"}, html);
  EXPECT_EQ(dom.exit_code, 0) << dom.errors;
  EXPECT_THAT(ConsoleLines(dom.errors), testing::IsEmpty()) << dom.errors;
  EXPECT_THAT(dom.output, HasSubstr("data-rendered=\"yes\""));
  for (const char* plot : {"plot-latency-over-time", "plot-spectrum", "plot-session-p99",
                           "plot-throughput", "plot-active-sessions", "plot-hit-rate"}) {
    const size_t at = dom.output.find(std::string("id=\"") + plot + "\"");
    ASSERT_NE(at, std::string::npos) << plot;
    const std::string svg = dom.output.substr(at, dom.output.find("</svg>", at) - at);
    const bool histogram = std::string(plot) == "plot-session-p99";
    EXPECT_GE(Count(svg, histogram ? "class=\"bar\"" : "class=\"series\""), 1)
        << plot << " has nothing drawn:\n"
        << svg;
    EXPECT_THAT(svg, testing::Not(HasSubstr("no data"))) << plot;
  }
  // p50, p90, p99 over time; token, TTFT and layer round trip in the spectrum; one line each
  // in the other three.
  EXPECT_EQ(Count(dom.output, "class=\"series\""), 3 + 3 + 1 + 1 + 1);
  EXPECT_THAT(dom.output, HasSubstr("class=\"band\""));

  const ChildRun shot = RunChromium(
      {"--screenshot=" + screenshot, "--window-size=1200,1500", "--hide-scrollbars"}, html);
  EXPECT_EQ(shot.exit_code, 0) << shot.errors;
  EXPECT_THAT(ConsoleLines(shot.errors), testing::IsEmpty()) << shot.errors;
  std::ifstream png(screenshot, std::ios::binary);
  std::string magic(8, '\0');
  png.read(magic.data(), 8);
  EXPECT_EQ(magic, std::string("\x89PNG\r\n\x1a\n", 8)) << screenshot;
}

}  // namespace
}  // namespace kvtier::test
