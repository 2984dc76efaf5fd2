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
    },
    {
      # The CNI plugin binary (plain C, no Node inside): forwards each call to
      # `pipework daemon`, or execs bin/pipework-cni.js when none runs.
      "target_name": "pipework-cni-shim",
      "type": "executable",
      "sources": ["native/cni-shim.c"],
      "cflags": ["-std=c11", "-O2", "-Wall", "-Wextra"]
    }
  ]
}
