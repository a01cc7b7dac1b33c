import { LabIcon } from '@jupyterlab/ui-components';

// A chip with a sparkle: a model living on this machine. `jp-icon3` lets the
// theme recolour it, so it reads in light and dark themes alike.
const chipSparkleSvg = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M9 2h2v3H9zM13 2h2v3h-2zM9 19h2v3H9zM13 19h2v3h-2zM2 9h3v2H2zM2 13h3v2H2zM19 9h3v2h-3zM19 13h3v2h-3z"/>
    <path fill-rule="evenodd" d="M7 5h10a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H7a2 2 0 0 1-2-2V7a2 2 0 0 1 2-2zm0 2v10h10V7z"/>
    <path d="M12 8.2l1.1 2.7 2.7 1.1-2.7 1.1-1.1 2.7-1.1-2.7-2.7-1.1 2.7-1.1z"/>
  </g>
</svg>`;

export const ociIcon = new LabIcon({
  name: 'oci-jupyter:icon',
  svgstr: chipSparkleSvg
});

// A wrench with the same sparkle: "the model fixes this cell", for the Fix
// command (the cell toolbar, its menus). The wrench follows the theme like
// the toolbar's other icons (`jp-icon3`); the sparkle takes the brand colour,
// the same in light and dark themes, so the button stands out on a failing
// cell. The wrench is Material's "build" (Apache 2.0), a little smaller.
const wrenchSparkleSvg = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path transform="translate(0 2) scale(0.9)" d="M22.7 19l-9.1-9.1c.9-2.3.4-5-1.5-6.9-2-2-5-2.4-7.4-1.3L9 6 6 9 1.6 4.7C.4 7.1.9 10.1 2.9 12.1c1.9 1.9 4.6 2.4 6.9 1.5l9.1 9.1c.4.4 1 .4 1.4 0l2.3-2.3c.5-.4.5-1.1.1-1.4z"/>
  </g>
  <g class="jp-icon-brand1" fill="#1976D2">
    <path d="M18.5 1l1.3 3.2 3.2 1.3-3.2 1.3-1.3 3.2-1.3-3.2-3.2-1.3 3.2-1.3z"/>
  </g>
</svg>`;

export const fixIcon = new LabIcon({
  name: 'oci-jupyter:fix',
  svgstr: wrenchSparkleSvg
});

// A pencil with the same sparkle: "the model changes this cell as you say",
// for the edit command (the cell toolbar, its menus). The pencil follows the
// theme (`jp-icon3`), the sparkle takes the brand colour, as on the Fix
// button. The pencil is Material's "edit" (Apache 2.0), a little smaller.
const pencilSparkleSvg = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path transform="translate(0 2) scale(0.9)" d="M3 17.25V21h3.75L17.81 9.94l-3.75-3.75L3 17.25zM20.71 7.04a1 1 0 0 0 0-1.41l-2.34-2.34a1 1 0 0 0-1.41 0l-1.83 1.83 3.75 3.75 1.83-1.83z"/>
  </g>
  <g class="jp-icon-brand1" fill="#1976D2">
    <path d="M5.5 1l1.3 3.2 3.2 1.3-3.2 1.3-1.3 3.2-1.3-3.2-3.2-1.3 3.2-1.3z"/>
  </g>
</svg>`;

export const editIcon = new LabIcon({
  name: 'oci-jupyter:edit',
  svgstr: pencilSparkleSvg
});
