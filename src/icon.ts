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
