"""Packaging for anomaly_nb, driven by `settings.ini` (nbdev 2).

nbdev's template imports `pkg_resources`, which current setuptools no longer ships, so the
requirement strings are split here with plain string handling instead.
"""
from configparser import ConfigParser
from pathlib import Path
import setuptools

config = ConfigParser(delimiters=["="])
config.read(Path(__file__).parent / "settings.ini", encoding="utf-8")
cfg = config["DEFAULT"]

licenses = {"apache2": "Apache-2.0"}  # SPDX expression: setuptools deprecates licence classifiers
statuses = ["1 - Planning", "2 - Pre-Alpha", "3 - Alpha", "4 - Beta", "5 - Production/Stable",
            "6 - Mature", "7 - Inactive"]
py_versions = "3.10 3.11 3.12 3.13".split()

def reqs(key):
    "Requirement strings listed (space-separated) under `key` in settings.ini."
    return cfg.get(key, "").split()

lic = licenses[cfg["license"]]
min_python = cfg["min_python"]
long_description = (Path(__file__).parent / "README.md").read_text(encoding="utf-8")

setuptools.setup(
    name=cfg["lib_name"],
    version=cfg["version"],
    description=cfg["description"],
    long_description=long_description,
    long_description_content_type="text/markdown",
    author=cfg["author"],
    author_email=cfg["author_email"],
    license=lic,
    url=cfg["git_url"],
    keywords=cfg["keywords"],
    classifiers=[
        "Development Status :: " + statuses[int(cfg["status"])],
        "Intended Audience :: " + cfg["audience"].title(),
        "Natural Language :: " + cfg["language"].title(),
        *["Programming Language :: Python :: " + v for v in py_versions[py_versions.index(min_python):]],
    ],
    packages=setuptools.find_packages(include=[cfg["lib_path"], cfg["lib_path"] + ".*"]),
    include_package_data=True,
    install_requires=reqs("requirements"),
    extras_require={"site": reqs("site_requirements"),  # the website build: nbconvert, nbformat, pyyaml
                    "export": reqs("export_requirements"),  # anomaly-nb export: onnx, onnxscript, onnxruntime
                    "openvino": reqs("openvino_requirements"),  # --format openvino
                    "deploy": reqs("deploy_requirements"),  # the runtime's needs (torch-free with pip install --no-deps)
                    "dask": reqs("dask_requirements"),  # anomaly_nb.distributed: fit/predict/update --dask
                    "dev": reqs("dev_requirements") + reqs("site_requirements") + reqs("export_requirements")
                           + reqs("openvino_requirements") + reqs("dask_requirements")},
    python_requires=">=" + min_python,
    entry_points={
        "console_scripts": cfg.get("console_scripts", "").split(),
        "nbdev": [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"],
    },
    zip_safe=False,
)
