// The dashboard reads everything through the API with the user's token.
(function () {
  "use strict";
  const button = document.getElementById("signin-button");
  button.addEventListener("click", () => {
    sessionStorage.setItem("hourglass-token", document.getElementById("token").value.trim());
    location.reload();
  });
})();
