// Taking a photo with the device camera (getUserMedia) into a JPEG blob.
// Browsers offer the camera only on https:// or localhost; elsewhere the file picker remains
// (on a phone it can open the camera too).

const JPEG_QUALITY = 0.92;

export function cameraAvailable() {
  return Boolean(navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
}

function stop(stream) {
  if (stream) for (const track of stream.getTracks()) track.stop();
}

/** Opens the camera dialog; resolves to a JPEG File, or null when cancelled. */
export function takePhoto({ facing = "user" } = {}) {
  const dialog = document.getElementById("camera-dialog");
  const video = document.getElementById("camera-video");
  const text = document.getElementById("camera-text");
  const shoot = document.getElementById("camera-shoot");
  const switchButton = document.getElementById("camera-switch");
  let stream = null;
  let facingMode = facing;

  async function start() {
    stop(stream);
    stream = null;
    shoot.disabled = true;
    text.textContent = "Starting the camera…";
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        video: { facingMode, width: { ideal: 1920 }, height: { ideal: 1080 } },
        audio: false,
      });
      video.srcObject = stream;
      await video.play();
      text.textContent = "";
      shoot.disabled = false;
    } catch (error) {
      text.textContent = `The camera cannot be used (${error.name}): choose a photo file instead.`;
    }
  }

  function onSwitch() {
    facingMode = facingMode === "user" ? "environment" : "user";
    start();
  }

  return new Promise((resolve) => {
    switchButton.addEventListener("click", onSwitch);
    dialog.addEventListener(
      "close",
      () => {
        switchButton.removeEventListener("click", onSwitch);
        const ok = dialog.returnValue === "ok" && stream !== null && video.videoWidth > 0;
        if (!ok) {
          stop(stream);
          video.srcObject = null;
          resolve(null);
          return;
        }
        const canvas = document.createElement("canvas");
        canvas.width = video.videoWidth;
        canvas.height = video.videoHeight;
        canvas.getContext("2d").drawImage(video, 0, 0);
        stop(stream);
        video.srcObject = null;
        canvas.toBlob(
          (blob) => {
            const stamp = new Date().toISOString().replace(/[:.]/g, "-");
            resolve(blob ? new File([blob], `camera-${stamp}.jpg`, { type: "image/jpeg" }) : null);
          },
          "image/jpeg",
          JPEG_QUALITY,
        );
      },
      { once: true },
    );
    dialog.returnValue = "";
    dialog.showModal();
    start();
  });
}
