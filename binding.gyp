{
  "targets": [
    {
      "target_name": "pipework",
      "sources": ["native/pipework.cc", "native/spawn.cc", "native/transact.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      # NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS: in a worker thread being
      # terminated an error can no longer be thrown to JavaScript; without it
      # node-addon-api would end the whole process instead.
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS", "_GNU_SOURCE"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-Wall", "-Wextra"],
      "cflags_cc!": ["-fno-exceptions"]
    }
  ]
}
