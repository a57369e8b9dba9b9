#pragma once
// CIFAR-10 and CIFAR-100, binary versions: fixed-size records of label byte(s) then 3x32x32 pixels
// (channel-major, so already [C, H, W]). CIFAR-10 records have one label; CIFAR-100 records have
// the coarse then the fine label, and the fine one is used (both are range-checked). The files
// have no header, so each file's size must be a whole, non-zero number of records.
#include <memory>
#include <string>

#include "data/dataset.h"

namespace bnn::data {

// Reads the split's batch files from `root`, or from its cifar-10-batches-bin/ or
// cifar-100-binary/ subfolder (where the official archives unpack) when the files are not in root.
std::shared_ptr<Dataset> load_cifar_dataset(const DatasetSpec& spec, const std::string& root, Split split);

}  // namespace bnn::data
