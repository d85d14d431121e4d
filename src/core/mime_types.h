// The Content-Type of a static file, from its extension (issue 11).
//
// A built-in table of the common web types, to which --static-mime adds or
// overrides entries. Lookups are by the text after the last '.' of the file
// name, compared without regard to ASCII case; a name without a known
// extension is application/octet-stream (as nginx's default_type).
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>

namespace fulmen {

class MimeTypes {
 public:
  // Starts with the built-in table.
  MimeTypes();

  // Adds or replaces the type of `ext` (without the dot, any case). Returns
  // false, changing nothing, when ext is empty or contains '.' or '/', or
  // type is empty or holds a control character.
  bool add(std::string_view ext, std::string_view type);

  // The type for a file name or path (only the last component's extension
  // counts). The view stays valid as long as this object, until add().
  std::string_view lookup(std::string_view name) const;

  static constexpr std::string_view kDefault = "application/octet-stream";

 private:
  std::unordered_map<std::string, std::string> types_;  // Lower-case extension -> type.
};

}  // namespace fulmen
