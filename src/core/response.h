// Pure helpers for writing responses: header validation and canned answers.
#pragma once

#include <string_view>

namespace fulmen {

// RFC 9110 5.1: a field name is a token. Rejecting anything else keeps an
// application from splitting a response with CR or LF in a name.
bool valid_header_name(std::string_view name);

// RFC 9110 5.5: field values are visible characters, SP, HTAB and obs-text;
// CR, LF, NUL and other controls are refused (no response splitting).
bool valid_header_value(std::string_view value);

// RFC 9110 7.6.1: hop-by-hop fields belong to the server, not the app
// (PEP 3333 "Other HTTP Features").
bool is_hop_by_hop(std::string_view name);

// ASCII case-insensitive equality; `lower` must already be lower case.
bool iequals(std::string_view s, std::string_view lower);

// s without leading and trailing spaces and tabs (RFC 9110 5.6.3 OWS).
std::string_view trim_ows(std::string_view s);

// The reason phrase of the status codes the core answers by itself.
std::string_view reason_phrase(int status);

}  // namespace fulmen
