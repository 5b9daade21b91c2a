from setuptools import find_packages, setup

# torch: a range that the CPU wheel torch==2.13.0 satisfies, so a CPU machine that has it
# installs nothing more; GPU machines get the CUDA build of the same range.
INSTALL_REQUIRES = [
    "torch>=2.6,<2.14",
    "lightning>=2.6,<2.7",
    "transformers>=5.0,<6",
    "peft>=0.17",
    "bitsandbytes>=0.46",
    "diffusers>=0.35",
    "hydra-core>=1.3,<1.4",
    "omegaconf>=2.3",
    "webdataset>=1.0,<2",
    "decord>=0.6",
    "av>=14",
    "tensorboard>=2.16",
    "numpy>=1.26",
    "scipy>=1.11",
    "pillow>=10",
    "pandas>=2",  # benchmark readers (parquet, csv)
    "pyarrow>=14",
    "litserve>=0.2.19,<0.3",  # the reward server (src/serve.py)
]

DEV_REQUIRES = [
    "pytest>=8",
    "ruff==0.17.6",
    "matplotlib>=3.8",  # experiments/*/collect.py plots
    "trl==1.16.0",  # the oracle for the VLM DPO loss tests and the baseline of benchmarks/bench_vlm_dpo.py
]

setup(
    name="unified_reward",
    version="0.1.0",
    description="Unified multimodal reward models, preference-data filtering and DPO with Lightning + Hydra",
    package_dir={"": "src"},
    packages=find_packages("src"),
    package_data={"unified_reward.prompts": ["official_templates.json"]},
    python_requires=">=3.10",
    install_requires=INSTALL_REQUIRES,
    extras_require={"dev": DEV_REQUIRES},
)
