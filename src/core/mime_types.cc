#include "core/mime_types.h"

#include <utility>

namespace fulmen {
namespace {

// Text types carry a charset: browsers otherwise guess one (and a guess is
// a content-sniffing hole). The list follows nginx's mime.types for the
// formats a web site ships today.
constexpr std::pair<std::string_view, std::string_view> kBuiltin[] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"json", "application/json"},
    {"map", "application/json"},
    {"webmanifest", "application/manifest+json"},
    {"txt", "text/plain; charset=utf-8"},
    {"md", "text/markdown; charset=utf-8"},
    {"csv", "text/csv; charset=utf-8"},
    {"xml", "application/xml"},
    {"rss", "application/rss+xml"},
    {"atom", "application/atom+xml"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"avif", "image/avif"},
    {"ico", "image/x-icon"},
    {"bmp", "image/bmp"},
    {"tif", "image/tiff"},
    {"tiff", "image/tiff"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"ttf", "font/ttf"},
    {"otf", "font/otf"},
    {"eot", "application/vnd.ms-fontobject"},
    {"wasm", "application/wasm"},
    {"pdf", "application/pdf"},
    {"zip", "application/zip"},
    {"gz", "application/gzip"},
    {"tgz", "application/gzip"},
    {"br", "application/octet-stream"},
    {"tar", "application/x-tar"},
    {"mp3", "audio/mpeg"},
    {"ogg", "audio/ogg"},
    {"oga", "audio/ogg"},
    {"wav", "audio/wav"},
    {"flac", "audio/flac"},
    {"m4a", "audio/mp4"},
    {"mp4", "video/mp4"},
    {"m4v", "video/mp4"},
    {"webm", "video/webm"},
    {"ogv", "video/ogg"},
    {"mov", "video/quicktime"},
    {"vtt", "text/vtt; charset=utf-8"},
};

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  return out;
}

}  // namespace

MimeTypes::MimeTypes() {
  for (const auto& [ext, type] : kBuiltin) types_.emplace(ext, type);
}

bool MimeTypes::add(std::string_view ext, std::string_view type) {
  if (ext.empty() || ext.size() > 16 || ext.find_first_of("./") != std::string_view::npos || type.empty())
    return false;
  for (char c : type)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return false;
  types_[lower(ext)] = std::string(type);
  return true;
}

std::string_view MimeTypes::lookup(std::string_view name) const {
  size_t slash = name.rfind('/');
  if (slash != std::string_view::npos) name.remove_prefix(slash + 1);
  size_t dot = name.rfind('.');
  if (dot == std::string_view::npos || dot + 1 == name.size()) return kDefault;
  std::string_view ext = name.substr(dot + 1);
  if (ext.size() > 16) return kDefault;
  char buf[16];
  for (size_t i = 0; i < ext.size(); ++i)
    buf[i] = (ext[i] >= 'A' && ext[i] <= 'Z') ? static_cast<char>(ext[i] + 32) : ext[i];
  auto it = types_.find(std::string(buf, ext.size()));
  return it == types_.end() ? kDefault : std::string_view(it->second);
}

}  // namespace fulmen
