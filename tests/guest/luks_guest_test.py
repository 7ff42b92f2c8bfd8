#!/usr/bin/env python3
"""luks_guest_test.py VIREO GUEST: the test guest's virtio-blk cases on encrypted disks (issue 18).

For a qcow2 image with encrypt.format=luks and a standalone luks image, each made by vireo-img
with a passphrase given as --object secret: vireo runs the test guest's blk and blk-smp cases
(writes in flight on 2 queues served by 2 iothreads, from 2 vCPUs, flushes, reads back,
write-zeroes, and discard on qcow2: a luks image ignores discards) on the disk opened with its key-secret; the guest must pass. Then
qemu-img reads the image with the same secret: qemu-img check is clean (qcow2) and its
plaintext is the one vireo-img decrypts. A wrong passphrase keeps vireo from starting, with
QEMU's message.
Needs qemu-img (Debian: qemu-utils); skips without it.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from vmtest import need_qemu_tools, run, setup  # noqa: E402

vireo, guest, tmp = setup()
need_qemu_tools()
vireo_img = os.path.join(os.path.dirname(os.path.abspath(vireo)), "tools", "vireo-img")
SECRET = "secret,id=sec0,data=guest-pass"

for fmt, create_opts, key in (
        ("qcow2", "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10",
         "encrypt.key-secret"),
        ("luks", "key-secret=sec0,iter-time=10", "key-secret")):
    img = os.path.join(tmp, f"disk.{fmt}")
    run(vireo_img, "create", "-q", "-f", fmt, "--object", SECRET, "-o", create_opts, img,
        "64M")
    blockdev = f"driver={fmt},node-name=disk,file.driver=file,file.filename={img},{key}=sec0"
    log = os.path.join(tmp, f"serial-{fmt}.log")
    cmd = [vireo, "run", "--kernel", guest, "--memory", "128M", "--cpus", "2",
           "--serial", f"file:{log}", "--object", SECRET, "--blockdev", blockdev,
           "--object", "iothread,id=io0", "--object", "iothread,id=io1", "--device",
           "virtio-blk-pci,drive=disk,id=disk0,num-queues=2,iothread-vq-mapping=io0:io1",
           "--cmdline", "blk blk-smp cpus=2 blk-require=1 blk-smp-iters=2" +
           # a luks image ignores discards (its ciphertext stays, as dm-crypt's): the guest
           # does not take VIRTIO_BLK_F_DISCARD (bit 13), whose check wants zeroes back
           (" blk-features=9223372036854767615" if fmt == "luks" else "")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    if r.returncode != 33:
        print(f"FAIL: {fmt}: the guest did not pass (status {r.returncode}): {r.stdout}"
              f"{r.stderr}\n{open(log, errors='replace').read()[-2000:]}")
        sys.exit(1)
    opts = f"driver={fmt},file.filename={img},{key}=sec0"
    if fmt == "qcow2":
        run("qemu-img", "check", "-q", "--object", SECRET, "--image-opts", opts)
    ours, theirs = os.path.join(tmp, "ours.raw"), os.path.join(tmp, "theirs.raw")
    run(vireo_img, "convert", "--object", SECRET, "--image-opts", "-O", "raw", opts, ours)
    run("qemu-img", "convert", "--object", SECRET, "--image-opts", "-O", "raw", opts, theirs)
    if open(ours, "rb").read() != open(theirs, "rb").read():
        print(f"FAIL: {fmt}: vireo-img and qemu-img decrypt different bytes")
        sys.exit(1)
    os.unlink(ours)
    os.unlink(theirs)
    wrong = [c.replace("data=guest-pass", "data=nope") for c in cmd]
    r = subprocess.run(wrong, capture_output=True, text=True, timeout=60)
    if r.returncode == 0 or "Invalid password, cannot unlock any keyslot" not in r.stdout + r.stderr:
        print(f"FAIL: {fmt}: a wrong passphrase: status {r.returncode}: {r.stdout}{r.stderr}")
        sys.exit(1)
    print(f"ok: {fmt}: the guest's blk and blk-smp cases pass on the encrypted disk")
print("PASS: encrypted qcow2 and luks disks under vireo, read back by qemu-img")
