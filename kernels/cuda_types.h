// The CUDA handle types by name only, for headers that mention them (launcher declarations, the
// context) without pulling the CUDA headers into every file that includes them — and without
// needing them at all in a build without CUDA (make CUDA=0). Each line repeats the library's own
// typedef, so it agrees with the real header where both are seen.
#pragma once

typedef struct CUstream_st* cudaStream_t;
typedef struct cudnnContext* cudnnHandle_t;
typedef struct cublasContext* cublasHandle_t;
typedef struct cusolverDnContext* cusolverDnHandle_t;
