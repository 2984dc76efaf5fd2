// The one error shape the addon throws: message, errno, code and syscall.
#pragma once

#include <napi.h>

#include <cstring>
#include <string>

inline Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall, const std::string& detail = "") {
  const char* code = strerrorname_np(err);
  std::string message = std::string(syscall) + " failed: " + strerror(err);
  if (!detail.empty()) message += " (" + detail + ")";
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("code", Napi::String::New(env, code ? code : "EUNKNOWN"));
  e.Set("syscall", Napi::String::New(env, syscall));
  return e;
}
