// The recordings page: what /recordings lists (the owner's session only), newest day first;
// a segment's button plays it here, its link downloads it.

const $ = (id) => document.getElementById(id);

/** "21-50-03.mp4" of "2026-12-07/21-50-03.mp4" as "21:50:03 UTC". */
function timeOf(name) {
  const file = name.split('/')[1] ?? name;
  return `${file.replace('.mp4', '').replaceAll('-', ':')} UTC`;
}

function megabytes(bytes) {
  return `${(bytes / 1048576).toFixed(1)} MB`;
}

function play(name) {
  const player = $('player');
  player.hidden = false;
  player.src = `/recordings/${name}`;
  player.dataset.name = name;
  player.play().catch(() => {});
}

function render(listing) {
  const free = listing.free_bytes == null ? '' : `, ${megabytes(listing.free_bytes)} free`;
  $('recorder').textContent = `The recorder: ${listing.status}${free}.`;
  const days = $('days');
  days.replaceChildren();
  if (listing.days.length === 0) {
    const none = document.createElement('p');
    none.textContent = 'Nothing recorded yet.';
    days.append(none);
    return;
  }
  for (const day of listing.days) {
    const section = document.createElement('section');
    const heading = document.createElement('h2');
    heading.textContent = day.day;
    const list = document.createElement('ul');
    for (const segment of day.segments) {
      const item = document.createElement('li');
      if (segment.thumbnail) {
        const picture = document.createElement('img');
        picture.src = `/recordings/${segment.thumbnail}`;
        picture.alt = `The camera at ${timeOf(segment.name)}`;
        picture.width = 160;
        item.append(picture, ' ');
      }
      const button = document.createElement('button');
      button.type = 'button';
      button.textContent = `${timeOf(segment.name)} (${megabytes(segment.bytes)})`;
      if (segment.name === listing.writing) button.textContent += ', recording';
      button.addEventListener('click', () => play(segment.name));
      const download = document.createElement('a');
      download.href = `/recordings/${segment.name}`;
      download.download = segment.name.replace('/', '_');
      download.textContent = 'Download';
      item.append(button, ' ', download);
      list.append(item);
    }
    section.append(heading, list);
    days.append(section);
  }
}

async function load() {
  const response = await fetch('/recordings', { redirect: 'manual' });
  if (response.status === 404) {
    $('recorder').textContent = 'Recording is off: set [recording] enabled = true in the device\'s config.';
  } else if (!response.ok) {
    $('recorder').textContent = 'Log in on the call page to see the recordings.';
  } else {
    render(await response.json());
  }
}

load();
