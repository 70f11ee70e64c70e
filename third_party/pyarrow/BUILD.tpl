package(default_visibility = ["//visibility:public"])

cc_library(
    name = "arrow",
    hdrs = glob(["include/arrow/**", "include/parquet/**"]),
    includes = ["include"],
    srcs = %{libraries},
)
