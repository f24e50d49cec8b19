// Every page: the lesson menu opens and closes on small screens.
const toggle = document.querySelector(".menu-toggle");
const nav = document.getElementById("lesson-nav");
if (toggle && nav) {
  toggle.addEventListener("click", () => {
    const open = nav.classList.toggle("open");
    toggle.setAttribute("aria-expanded", String(open));
  });
}
